# Shared set-up of the host integration tests (sourced, bash): the binaries
# under test, a scratch directory, processes to stop on exit, and PASS/FAIL
# counters.
#
# VB (voipbridge), AT (audiotest), SIM (rtos-sim) and PC (pcmcheck) are the
# test profile's builds in $SND_VOIP_BIN (`make bridge`; scripts/env.sh
# computes it when the test is run by hand). They are set here, over any
# value a test computed before sourcing this file: every test runs the same
# binaries, the ones `make test` built.
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/env.sh"
VB=$SND_VOIP_BIN/voipbridge AT=$SND_VOIP_BIN/audiotest SIM=$SND_VOIP_BIN/rtos-sim PC=$SND_VOIP_BIN/pcmcheck
for _b in "$VB" "$AT"; do
    [ -x "$_b" ] || { echo "FAIL: $_b not built: run 'make bridge'"; exit 1; }
done
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
failed=0 passed=0
pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }

# vb_start NAME: run voipbridge on $dir/NAME.toml (stderr to $dir/NAME.log)
# and wait up to 10 s for its control socket $dir/NAME.sock; the pid goes to
# pids (stopped on exit) and to pid_NAME. A socket that never appears (the
# agent exited, or hangs before listening) fails the test there, with the
# agent's log: every later step would only fail more obscurely.
vb_start() {
    "$VB" run --config "$dir/$1.toml" 2>"$dir/$1.log" &
    pids+=($!)
    eval "pid_$1=$!"
    if ! wait_until 10 test -S "$dir/$1.sock"; then
        echo "FAIL: voipbridge $1 has no control socket $dir/$1.sock after 10 s: $(tail -n 5 "$dir/$1.log" | tr '\n' ' ')"
        exit 1
    fi
}
# wait_until SECONDS CMD...: run CMD every 0.05 s until it succeeds; 1 when
# SECONDS pass first. (Host tests wait on conditions, never on fixed sleeps.)
wait_until() {
    local end=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt "$end" ] || return 1
        sleep 0.05
    done
}
# media_stopped LOG N [SECONDS]: wait (default 10 s) until the voipbridge
# writing LOG has stopped the media of N calls ("media stopped": its threads
# joined, so a wav: playback file has its final header). 1 on timeout.
media_stopped() { wait_until "${3:-10}" sh -c '[ "$(grep -c "media stopped" "$1")" -ge "$2" ]' _ "$1" "$2"; }
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
# wait_log TEXT FILE [SECONDS]: wait up to SECONDS (default 5) for TEXT (any
# case) in FILE, which a server may still be writing.
wait_log() { wait_until "${3:-5}" grep -qi -- "$1" "$2"; }
# udp_listening PORT / tcp_listening PORT: a socket is bound to PORT in this
# network namespace (a registrar or far-end phone is ready: a request sent
# to a bound UDP socket waits in its buffer until the workers read it).
udp_listening() {
    ss -Hluan "sport = :$1" 2>/dev/null | grep -q .
}
tcp_listening() {
    ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
}

# kamailio_db DIR USER:PASSWORD...: kamailio's db_text tables in DIR/db (a
# subscriber table holding each USER at domain 127.0.0.1 with PASSWORD, in
# clear as kamailio-registrar.cfg reads it) and DIR/run for its pid file.
kamailio_db() {
    local d=$1 up n=0
    shift
    mkdir -p "$d/db" "$d/run"
    printf 'table_name(string) table_version(int)\nsubscriber:7\n' >"$d/db/version"
    {
        echo 'id(int,auto) username(string) domain(string) password(string) ha1(string,null) ha1b(string,null)'
        for up in "$@"; do
            n=$((n + 1))
            echo "$n:${up%%:*}:127.0.0.1:${up#*:}:::"
        done
    } >"$d/db/subscriber"
}
