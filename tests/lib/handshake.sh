# The guest/host handshake of the emulated-board tests (sourced; POSIX sh,
# so busybox in the guest and bash on the host both read it).
#
# The guest asks the host to act on the RTOS side (start or stop the
# simulator, freeze it, corrupt a ring ...) through the output directory
# both share: it writes request.N (the action, one line), the host carries
# it out and writes done.N (the action's exit status). N counts from 1;
# both files are written whole (a .tmp file renamed into place).

# Guest: host_request DIR ACTION...: asks for ACTION and waits up to 60 s.
# Status 0 when the host did it; otherwise 1, with the reason in
# $host_request_error.
host_request_seq=0
host_request() {
    _hr_dir=$1
    shift
    host_request_seq=$((host_request_seq + 1))
    _hr_n=$host_request_seq
    echo "$*" >"$_hr_dir/request.$_hr_n.tmp" && mv "$_hr_dir/request.$_hr_n.tmp" "$_hr_dir/request.$_hr_n"
    _hr_i=0
    while [ ! -e "$_hr_dir/done.$_hr_n" ]; do
        sleep 0.2
        _hr_i=$((_hr_i + 1))
        [ $_hr_i -lt 300 ] || { host_request_error="host action '$*' not done within 60 s"; return 1; }
    done
    [ "$(cat "$_hr_dir/done.$_hr_n")" = 0 ] || { host_request_error="host action '$*' failed"; return 1; }
}

# Host: serve_requests DIR PID HANDLER [IDLE]: until process PID ends,
# carries out each request.N in DIR with `HANDLER ACTION`, whose status
# goes into done.N, and logs it; IDLE, when given, runs about once a second
# while no request waits.
serve_requests() {
    _sr_dir=$1 _sr_pid=$2 _sr_handler=$3 _sr_idle=${4:-}
    _sr_n=1 _sr_tick=0
    while kill -0 "$_sr_pid" 2>/dev/null; do
        if [ -e "$_sr_dir/request.$_sr_n" ]; then
            _sr_req=$(cat "$_sr_dir/request.$_sr_n")
            _sr_rc=0
            "$_sr_handler" "$_sr_req" || _sr_rc=$?
            echo "$_sr_rc" >"$_sr_dir/done.$_sr_n.tmp" && mv "$_sr_dir/done.$_sr_n.tmp" "$_sr_dir/done.$_sr_n"
            echo "host: request $_sr_n: $_sr_req -> $_sr_rc"
            _sr_n=$((_sr_n + 1))
        else
            sleep 0.1
            _sr_tick=$((_sr_tick + 1))
            [ -z "$_sr_idle" ] || [ $((_sr_tick % 10)) != 0 ] || "$_sr_idle"
        fi
    done
}
