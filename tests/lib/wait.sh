# Bounded waits for the guest scripts (sourced; POSIX sh, so busybox on the
# arm64 board and dash on the x86 guest both read it). In an emulated guest
# under KASAN a program can take a minute to start when the host is loaded:
# wait on a condition, never on a fixed sleep.

# ms: the guest's uptime in milliseconds (a builtin read, no fork; busybox
# date has no %N).
ms() { read -r u _ </proc/uptime; echo $((${u%.*} * 1000 + 1${u#*.} * 10 - 1000)); }

# wait_for SECONDS CMD...: run CMD (in this shell, output discarded) every
# 0.2 s until it succeeds; 1 on timeout. Sets $took to the seconds waited,
# to a tenth.
wait_for() {
    _start=$(ms); _end=$((_start + $1 * 1000)); shift
    until "$@" >/dev/null 2>&1; do
        [ "$(ms)" -lt "$_end" ] || { _t=$(($(ms) - _start)); took=$((_t / 1000)).$((_t / 100 % 10)); return 1; }
        sleep 0.2
    done
    _t=$(($(ms) - _start)); took=$((_t / 1000)).$((_t / 100 % 10))
}
