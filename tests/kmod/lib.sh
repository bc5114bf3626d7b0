# Helpers for the guest-side card tests (sourced by scripts run with
# tests/qemu/run-guest.sh). Each check prints "PASS: name" or "FAIL: name: why".
# The test binaries (audiotest, pcmcheck) come from $SND_VOIP_BIN, which
# tests/qemu/run-guest.sh shares with the guest (--bin-dir).
passed=0 failed=0
AT=${AUDIOTEST:-$SND_VOIP_BIN/audiotest}
PC=${PCMCHECK:-$SND_VOIP_BIN/pcmcheck}
pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
check() { # check NAME CMD... : pass when CMD succeeds
    name=$1; shift
    if out=$("$@" 2>&1); then pass "$name"; else fail "$name: $(echo "$out" | grep -v '^ ' | tail -n 6 | tr '\n' ' ')"; return 1; fi
}
# known NAME DEFECT CMD...: a check of an open defect (DEFECT says which,
# README "Known defects" lists them): PASS when CMD succeeds, else an
# "XFAIL: NAME: why (known defect: DEFECT)" line that is counted and shown
# in the summary but does not fail the run. Never used to hide a new
# failure: a check goes here only with its defect written down.
xfailed=0
known() {
    name=$1 defect=$2; shift 2
    if out=$("$@" 2>&1); then pass "$name"; else
        echo "XFAIL: $name: $(echo "$out" | grep -v '^ ' | tail -n 6 | tr '\n' ' ')(known defect: $defect)"
        xfailed=$((xfailed + 1)); return 1
    fi
}
summary() {
    if [ "$xfailed" = 0 ]; then echo "$passed passed, $failed failed"; else echo "$passed passed, $failed failed, $xfailed known defects (XFAIL lines)"; fi
    [ "$failed" = 0 ]
}
# Fails the run on any kernel report from KASAN, lockdep, WARN or BUG.
check_dmesg() {
    if dmesg | grep -E "BUG:|WARNING:|KASAN|possible recursive locking|circular locking|inconsistent lock state|INFO: task|Oops|general protection|refcount_t:|UBSAN" >/tmp/dmesg-bad 2>&1; then
        fail "kernel log is clean: $(head -n 5 /tmp/dmesg-bad | tr '\n' ' ')"
        dmesg | tail -n 80
    else
        pass "kernel log is clean (no KASAN, lockdep, WARN or BUG)"
    fi
}
# kmemleak: no leak in sound code. These suites run on the debug kernel
# (run-guest.sh --debug-kernel checked its config): kmemleak missing is a
# failure, never a skip.
check_kmemleak() {
    [ -w /sys/kernel/debug/kmemleak ] || { fail "kmemleak: /sys/kernel/debug/kmemleak is missing (a debug-kernel suite on a kernel without kmemleak, or debugfs not mounted)"; return; }
    echo scan >/sys/kernel/debug/kmemleak; sleep 6; echo scan >/sys/kernel/debug/kmemleak
    if grep -q "snd_voip\|snd-voip\|snd_pcm\|snd_card" /sys/kernel/debug/kmemleak; then
        fail "kmemleak: leaks in sound code: $(head -n 20 /sys/kernel/debug/kmemleak | tr '\n' ' ')"
    else
        pass "kmemleak: no leak in sound code"
    fi
}
# wait_proc TEXT FILE...: wait (up to 15 s) until every FILE contains TEXT.
# wait_proc_t SECONDS TEXT FILE...: the same, up to SECONDS.
# (POSIX sh has no local variables: every name here starts with wp_.)
# The files are read by the shell itself (has_line), never by a grep per
# file and poll: under KASAN and TCG every process start costs the guest
# 0.2-0.7 s of CPU (measured 2026-12-05: a grep of a cable's /proc file
# 0.65 s), and sixteen greps ten times a second took the CPUs the
# recorders being waited for needed (8 arecord starts: 67 s).
wait_proc() { wait_proc_t 15 "$@"; }
wait_proc_t() {
    wp_n=$(($1 * 10)); shift
    wp_text=$1; shift
    wp_i=0
    while [ $wp_i -lt $wp_n ]; do
        wp_all=1
        for wp_f in "$@"; do has_line "$wp_text" "$wp_f" || { wp_all=0; break; }; done
        [ $wp_all = 1 ] && return 0
        sleep 0.1; wp_i=$((wp_i + 1))
    done
    echo "wait_proc: '$wp_text' not seen in $*" >&2
    return 1
}
# has_line TEXT FILE: FILE (a /proc file, a log) has a line containing
# TEXT (a plain string, not a pattern); read by the shell's own builtins.
has_line() {
    [ -r "$2" ] || return 1
    while IFS= read -r hl_l || [ -n "$hl_l" ]; do
        case $hl_l in *"$1"*) return 0 ;; esac
    done <"$2"
    return 1
}

# pcm_ptr DEV DIR SUB FIELD: the field (hw_ptr, appl_ptr) of a substream's
# /proc/asound/VoIP/pcm<DEV><DIR>/sub<SUB>/status, empty when it is not running.
pcm_ptr() {
    [ -r /proc/asound/VoIP/pcm$1$2/sub$3/status ] || return 0
    while IFS= read -r pp_l; do
        case $pp_l in
            "$4"" "*|"$4:"*) pp_v=${pp_l#*:}; echo ${pp_v# }; return 0 ;;
        esac
    done </proc/asound/VoIP/pcm$1$2/sub$3/status
}
# read_up_to DEV SUB: wait (up to 10 s) until the capture on hw:VoIP,DEV,SUB
# has handed the application every frame captured until now: its appl_ptr
# reaches the hw_ptr of this moment. Called once the playback feeding it has
# drained, so the recording holds the whole tone when it is stopped.
read_up_to() {
    ru_hw=$(pcm_ptr "$1" c "$2" hw_ptr)
    [ -n "$ru_hw" ] || return 1
    ru_i=0
    while [ $ru_i -lt 100 ]; do
        ru_appl=$(pcm_ptr "$1" c "$2" appl_ptr)
        [ -n "$ru_appl" ] && [ "$ru_appl" -ge "$ru_hw" ] && return 0
        sleep 0.1; ru_i=$((ru_i + 1))
    done
    echo "read_up_to: hw:VoIP,$1,$2 capture appl_ptr ${ru_appl:-?} did not reach hw_ptr $ru_hw in 10 s" >&2
    return 1
}
