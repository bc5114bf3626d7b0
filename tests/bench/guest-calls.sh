# Guest half of tests/bench/calls-guest.sh (POSIX sh, run by run-guest.sh in
# one boot of the production kernel; the host's binaries are visible, ours in
# $SND_VOIP_BIN). Arguments: WINDOW_SECONDS, the call counts ("1 8") and
# voipbridge's [audio] period_ms (empty: its default, 10).
#
# snd-voip and snd-aloop, 8 substreams each. The far end is a SIPp UAC on
# 127.0.0.1 that places N calls at once to the agent (PCMU, 20 ms, SIPp's
# default offer), echoes every RTP packet back to its sender (-rtp_echo)
# and hangs up WINDOW_SECONDS + 15 s after its answer. Round A: voipbridge
# (its defaults: bridge end hw:VoIP,1,n, substream n per call, period
# 10 ms) answers; round B: baresip (Debian's, g711 + alsa,
# plughw:Loopback,1: each call's open takes a free subdevice, period = ptime
# 20 ms) answers the same calls on snd-aloop. Both agents run throughout and
# the rounds alternate: A 1, B 1, A 8, B 8. Once every call is up and its
# substreams run, an application (aplay, one per call) plays a 440 Hz tone
# into the other end of each call's cable (plughw:VoIP,0,n /
# plughw:Loopback,0,n), so each agent captures a tone and sends it; what
# the agent plays back is read by nobody. After one second of settling, a
# window of WINDOW_SECONDS: the agent's utime+stime (/proc/PID/stat), the
# kernel's system, irq and softirq time (/proc/stat, all CPUs), SIPp's and
# the aplays' CPU, UDP datagrams received (/proc/net/snmp), the agent's
# VmRSS and device trouble (voipbridge's xruns, baresip's alsa complaints);
# then the checks that every call was up for the whole window (the agent's
# own count at both ends of it, SIPp's current/successful/failed counters,
# running substreams). One line per round in ./results ($GUEST_OUT); a
# round whose calls or substreams fell short writes "fail ..." and no
# figures.
VB=$SND_VOIP_BIN/voipbridge AT=$SND_VOIP_BIN/audiotest
W=${1:-15}
NS=${2:-"1 8"}
PERIOD=${3:-}
SETTLE=1
D=$((W + 15))
HZ=$(getconf CLK_TCK)
say() { echo "calls-guest: $*"; }
res() { echo "$*" >>results; }
# wait_until SECONDS CMD...: poll CMD every 0.2 s; 1 when SECONDS pass first
wait_until() {
    _end=$(($(date +%s) + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$_end" ] || return 1
        sleep 0.2
    done
}
udp_listening() { ss -Hluan "sport = :$1" | grep -q .; }
# running CARD DEV DIR: substreams of that PCM in state RUNNING
running() { grep -l "RUNNING" /proc/asound/"$1"/pcm"$2""$3"/sub*/status 2>/dev/null | wc -l; }
# snap FILE AGENT_PID SIPP_PID APP_PIDS: the counters at one instant, read
# by one process (grep -H: each line prefixed by its file), parsed later
snap() {
    _f=$1; shift
    _files="/proc/uptime /proc/stat /proc/net/snmp"
    for _p in $*; do [ -r "/proc/$_p/stat" ] && _files="$_files /proc/$_p/stat"; done
    # shellcheck disable=SC2086 # a list of files
    grep -H "" $_files >"$_f"
}
# deltas A B AGENT_PID SIPP_PID: key=value figures over the window, CPU in %
# of one vCPU (the other processes' stat lines are the aplays)
deltas() {
    awk -v hz="$HZ" -v agent="${3:-x}" -v sipp="${4:-x}" '
    { f = FNR == NR ? "a" : "b" }
    /^\/proc\/uptime:/ { sub(/^[^:]*:/, ""); V[f, "up"] = $1; next }
    /^\/proc\/stat:cpu / { V[f, "sys"] = $4; V[f, "irq"] = $7; V[f, "softirq"] = $8; V[f, "busy"] = $2 + $3 + $4 + $7 + $8; next }
    /^\/proc\/[0-9]+\/stat:/ {
        split($1, x, "/")
        if (x[3] == agent) { V[f, "utime"] = $14; V[f, "stime"] = $15 }
        else if (x[3] == sipp) V[f, "sipp"] = $14 + $15
        else V[f, "app"] += $14 + $15
        next
    }
    /^\/proc\/net\/snmp:Udp: [0-9]/ { V[f, "udp"] = $2 }
    END {
        e = V["b", "up"] - V["a", "up"]
        p = 100 / hz / e
        split("utime stime sys irq softirq busy sipp app udp", K, " ")
        for (i in K) d[K[i]] = V["b", K[i]] - V["a", K[i]]
        printf "elapsed=%.2f agent_cpu=%.2f user=%.2f agentsys=%.2f sys=%.2f irq=%.2f softirq=%.2f busy=%.2f sipp=%.2f app=%.2f udp_per_s=%.1f\n", e,
            (d["utime"] + d["stime"]) * p, d["utime"] * p, d["stime"] * p, d["sys"] * p, d["irq"] * p, d["softirq"] * p, d["busy"] * p,
            d["sipp"] * p, d["app"] * p, d["udp"] / e
    }' "$1" "$2"
}
# sipp_stat CSV COLUMN: the last value of COLUMN in SIPp's -trace_stat file
sipp_stat() { awk -F';' -v col="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next } c { v = $c } END { print v + 0 }' "$1" 2>/dev/null || echo 0; }

# calls_up AGENT: the agent's own count of calls that are up
calls_up() {
    case $1 in
        voipbridge) $VB status --config vb.toml 2>/dev/null | grep -c '\[active\]' ;;
        baresip) echo $(($(grep -c "Call established" bs.log) - $(grep -c "terminated" bs.log))) ;;
    esac
}
# dev_warnings AGENT start|end: the agent's device trouble so far, summed
# over its calls: voipbridge's xruns (status, from the file the round just
# wrote), baresip's alsa module's complaints (short writes, read errors)
dev_warnings() {
    case $1 in
        voipbridge) awk '/rtp: sent/ { for (i = 1; i <= NF; i++) if ($i == "xruns") x += $(i + 1) } END { print x + 0 }' "status-$n-$2.txt" ;;
        baresip) grep -c "alsa: " bs.log ;;
    esac
}
has_calls() { [ "$(calls_up "$1")" -eq "$2" ]; }

modprobe snd-voip pcm_substreams=8 || { say "modprobe snd-voip failed"; exit 1; }
modprobe snd-aloop pcm_substreams=8 || { say "modprobe snd-aloop failed"; exit 1; }
wait_until 10 test -d /proc/asound/VoIP || { say "no card VoIP"; exit 1; }
wait_until 10 test -d /proc/asound/Loopback || { say "no card Loopback"; exit 1; }
$AT gen --wav --rate 8000 --freq 440 --seconds $((D + 30)) tone.wav >/dev/null || { say "audiotest gen failed"; exit 1; }
res "guest $(uname -r) $(nproc) CPUs USER_HZ=$HZ window=${W}s call=${D}s $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*' | head -n 1) $(baresip -h 2>&1 | head -n 1 | cut -d' ' -f1-2)"

# The kernel's idle baseline: both modules loaded, nothing running (once
# here and once after the rounds; the host subtracts the quieter one).
idle() {
    snap idle.a
    sleep 5
    snap idle.b
    res "idle $(deltas idle.a idle.b)"
    say "idle: $(deltas idle.a idle.b)"
}
idle

cat >vb.toml <<CFG
[account]
uri = "sip:bridge@127.0.0.1:5491"
[sip]
listen = "127.0.0.1:5491"
[media]
rtp_ports = "41610-41640"
codecs = ["PCMU"]
[audio]
substreams = 8
${PERIOD:+period_ms = $PERIOD
buffer_ms = $((PERIOD * 2))}
[call]
allow = ["sipp@127.0.0.1"]
[control]
socket = "$PWD/vb.sock"
CFG
mkdir -p bs
cat >bs/config <<CFG
sip_listen		127.0.0.1:5492
net_interface		127.0.0.1
audio_player		alsa,plughw:Loopback,1
audio_source		alsa,plughw:Loopback,1
audio_srate		8000
audio_channels		1
call_max_calls		16
module_path		/usr/lib/baresip/modules
module			g711.so
module			alsa.so
module			account.so
CFG
echo "<sip:bs@127.0.0.1:5492>;regint=0;answermode=auto;audio_codecs=PCMU" >bs/accounts

rc=0
# round AGENT CARD PID PORT USER N
round() {
    agent=$1 card=$2 apid=$3 port=$4 user=$5 n=$6
    tag="agent=$agent card=$card n=$n"
    st=sipp-$agent-$n.csv
    rm -f "$st"
    sipp -sn uac "127.0.0.1:$port" -s "$user" -i 127.0.0.1 -p 5490 -mp 41600 -rtp_echo \
        -l "$n" -m "$n" -r "$n" -rp 1000 -d $((D * 1000)) -timeout $((D + 60)) -nostdin \
        -trace_stat -stf "$st" -fd 1 -trace_err -error_file "sipp-$agent-$n.err" >"sipp-$agent-$n.out" 2>&1 &
    sp=$!
    t0=$(cut -d' ' -f1 /proc/uptime)
    # Every call up and its media running (the agent's both substreams
    # started) before the applications start: a cable's ends share one
    # format, and the agent's end opened first gets the agent's (voipbridge's
    # MU_LAW passthrough), the application's plughw converts.
    if ! wait_until 30 has_calls "$agent" "$n" || ! wait_until 20 sh -c "[ \$(grep -l RUNNING /proc/asound/$card/pcm1c/sub*/status | wc -l) -ge $n ] &&
            [ \$(grep -l RUNNING /proc/asound/$card/pcm1p/sub*/status | wc -l) -ge $n ]"; then
        res "fail $tag reason=only_$(calls_up "$agent")_of_${n}_calls_up_$(running "$card" 1 c)_capture_$(running "$card" 1 p)_playback_substreams_running"
        kill $sp 2>/dev/null; wait $sp 2>/dev/null; rc=1; return
    fi
    tc=$(cut -d' ' -f1 /proc/uptime)
    aps=""
    i=0
    while [ $i -lt "$n" ]; do
        aplay -q -D "plughw:$card,0,$i" tone.wav 2>"aplay-$agent-$i.err" &
        aps="$aps $!"
        i=$((i + 1))
    done
    wait_until 20 sh -c "[ \$(grep -l RUNNING /proc/asound/$card/pcm0p/sub*/status | wc -l) -ge $n ]"
    t1=$(cut -d' ' -f1 /proc/uptime)
    setup=$(awk -v a="$t0" -v b="$tc" -v c="$t1" 'BEGIN { printf "setup_s=%.1f calls_s=%.1f app_s=%.1f", c - a, b - a, c - b }')
    # The window must end before SIPp's first hang-up (D s after its answer,
    # which came after t0), else it would measure calls that ended.
    if ! awk -v a="$t0" -v c="$t1" -v t=$((SETTLE + W + 3)) -v d="$D" 'BEGIN { exit !(c - a + t < d) }'; then
        res "fail $tag reason=set-up_too_slow_for_the_calls_length $setup"
        for p in $aps; do kill "$p" 2>/dev/null; done
        kill $sp 2>/dev/null; wait $sp 2>/dev/null; rc=1; return
    fi
    sleep $SETTLE
    up0=$(calls_up "$agent")
    [ "$agent" != voipbridge ] || $VB status --config vb.toml >"status-$n-start.txt" 2>&1
    w0=$(dev_warnings "$agent" start)
    snap win.a "$apid" "$sp" $aps
    sleep "$W"
    snap win.b "$apid" "$sp" $aps
    hw=$(for dir in c p; do printf ' %s %s/%s' "$dir" "$(sed -n 's/^period_size: //p' "/proc/asound/$card/pcm1$dir/sub0/hw_params")" \
        "$(sed -n 's/^buffer_size: //p' "/proc/asound/$card/pcm1$dir/sub0/hw_params")"; done)
    res "detail $tag agent's substream 0 period/buffer frames:$hw"
    subs_cap=$(running "$card" 1 c) subs_play=$(running "$card" 1 p) subs_app=$(running "$card" 0 p)
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$apid/status")
    up1=$(calls_up "$agent")
    cur=$(sipp_stat "$st" CurrentCall) okc=$(sipp_stat "$st" "SuccessfulCall(C)") failc=$(sipp_stat "$st" "FailedCall(C)")
    if [ "$agent" = voipbridge ]; then
        $VB status --config vb.toml >"status-$n-end.txt" 2>&1
        sed -n 's/^ *devices: /devices: /p' "status-$n-end.txt" | head -n 1 | sed "s/^/detail $tag /" >>results
    fi
    xr=$(($(dev_warnings "$agent" end) - w0))
    for p in $aps; do kill "$p" 2>/dev/null; done
    d=$(deltas win.a win.b "$apid" "$sp")
    checks="up_start=$up0 up_end=$up1 sipp_current=$cur sipp_ended=$okc sipp_failed=$failc subs_agent_capture=$subs_cap subs_agent_playback=$subs_play subs_app=$subs_app"
    say "$tag $d rss_kb=$rss $checks xruns=$xr"
    # Every call up from the window's start to its end (SIPp's counters are
    # at most 1 s old; its calls end D s after their answer, seconds after
    # the window), and each call's substreams running.
    if [ "$up0" = "$n" ] && [ "$up1" = "$n" ] && [ "$cur" = "$n" ] && [ "$okc" = 0 ] && [ "$failc" = 0 ] &&
        [ "$subs_cap" = "$n" ] && [ "$subs_play" = "$n" ] && [ "$subs_app" = "$n" ]; then
        res "round $tag $d rss_kb=$rss $checks xruns=$xr $setup"
    else
        res "fail $tag $checks $setup"
        rc=1
    fi
    # SIPp hangs up D s after each answer and exits when its N calls ended.
    if ! wait_until $((D + 20)) sh -c "! kill -0 $sp"; then kill $sp 2>/dev/null; fi
    wait $sp 2>/dev/null
    okc=$(sipp_stat "$st" "SuccessfulCall(C)") failc=$(sipp_stat "$st" "FailedCall(C)")
    res "end $tag sipp_ended=$okc sipp_failed=$failc"
    if [ "$okc" != "$n" ] || [ "$failc" != 0 ]; then
        res "fail $tag reason=sipp_${okc}_ended_${failc}_failed_of_$n"
        rc=1
    fi
    wait_until 10 has_calls "$agent" 0 || { res "fail $tag reason=agent_still_has_$(calls_up "$agent")_calls"; rc=1; }
    for p in $aps; do wait "$p" 2>/dev/null; done
}

# Both agents run from here on, each idle while the other's round runs; the
# rounds alternate (voipbridge N, baresip N), so that each pair is measured
# minutes apart at most, under the same load on the host.
RUST_LOG=info $VB run --config vb.toml 2>vb.log &
vp=$!
baresip -f "$PWD/bs" </dev/null >bs.log 2>&1 &
bp=$!
vb_up=1 bs_up=1
wait_until 30 test -S vb.sock && wait_until 10 udp_listening 5491 || { res "fail agent=voipbridge reason=not_started"; rc=1; vb_up=0; }
wait_until 30 udp_listening 5492 || { res "fail agent=baresip reason=not_started"; rc=1; bs_up=0; }
for n in $NS; do
    [ $vb_up = 0 ] || round voipbridge VoIP $vp 5491 bridge "$n"
    [ $bs_up = 0 ] || round baresip Loopback $bp 5492 bs "$n"
done
kill $vp $bp 2>/dev/null; wait $vp $bp 2>/dev/null
idle
# baresip's alsa complaints over the whole run, the commonest first
grep -a "alsa: " bs.log | sed 's/\x1b\[[0-9;]*m//g; s/[0-9][0-9]* of/N of/' | sort | uniq -c | sort -rn | head -n 3 |
    sed 's/^ */detail agent=baresip log (whole run): /' >>results
exit $rc
