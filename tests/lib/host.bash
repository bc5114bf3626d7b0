# Shared set-up of the host integration tests (sourced, bash): a scratch
# directory, processes to stop on exit, and PASS/FAIL counters.
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
failed=0 passed=0
pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }

# vb_start NAME: run voipbridge on $dir/NAME.toml (stderr to $dir/NAME.log)
# and wait up to 5 s for its control socket $dir/NAME.sock; the pid goes to
# pids (stopped on exit) and to pid_NAME. Needs VB.
vb_start() {
    "$VB" run --config "$dir/$1.toml" 2>"$dir/$1.log" &
    pids+=($!)
    eval "pid_$1=$!"
    for _ in $(seq 50); do [ -S "$dir/$1.sock" ] && break; sleep 0.1; done
}
# check_tone NAME WAV FREQ [audiotest analyze options]: PASS when audiotest
# finds FREQ in WAV with those options. Needs AT.
check_tone() {
    local name=$1 wav=$2 freq=$3
    shift 3
    if "$AT" analyze --wav "$wav" --freq "$freq" "$@" >"$dir/an.txt" 2>&1; then
        pass "$name: $(grep channel "$dir/an.txt" | head -n 1)"
    else
        fail "$name: $(cat "$dir/an.txt")"
    fi
}
# sipp_stat CSV COLUMN: the last value of COLUMN (e.g. 'SuccessfulCall(C)')
# in a sipp -trace_stat file (0 when missing).
sipp_stat() { awk -F';' -v col="$2" 'NR==1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next } c { v = $c } END { print v + 0 }' "$1"; }
# wait_log TEXT FILE: wait up to 5 s for TEXT (any case) in FILE, which a
# server may still be writing.
wait_log() {
    for _ in $(seq 50); do grep -qi -- "$1" "$2" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}
