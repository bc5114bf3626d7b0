#!/bin/sh
# The demo on the emulated arm64 AMP board, inside the guest (tests/demo/board.sh
# boots it and runs this with busybox and Debian's arm64 userspace):
#
#   guest-board.sh VOIPBRIDGE CALL_SECONDS   (VOIPBRIDGE: an arm64 binary,
#                                            relative to $GUEST_OUT or absolute)
#
# The board's microphone and speaker belong to the RTOS core (tools/rtos-sim
# on the host, on the guest RAM file). snd-voip binds the device-tree FIFO
# node, so hw:VoIP,0,0 capture reads the microphone ring (Capture Source =
# RTOS) and hw:VoIP,0,0 playback feeds the speaker ring (Playback Sink =
# RTOS). kamailio registers both phones (digest auth); baresip is the far
# end (answers, sends $GUEST_OUT/tone440.wav, records); the arm64 voipbridge
# VOIPBRIDGE runs on hw:VoIP,0,0 and calls it for CALL_SECONDS. Then it asks
# the host to stop the simulator (request.N -> done.N in $GUEST_OUT), hangs
# up, stops everything and unloads the module.
#
# Output in $GUEST_OUT: far-heard.wav (baresip's recording), logs, status,
# /proc snapshots, and report.txt: the guest's half of the demo report
# (audiotest is an x86_64 program: the host analyses the recordings).
# Exit status 0 when every guest-side check passed.
case "${1:-}" in
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    "") echo "usage: guest-board.sh VOIPBRIDGE CALL_SECONDS" >&2; exit 2 ;;
esac
VB=$1
CALL_SECONDS=${2:-10}
R=$SND_VOIP_ROOT
O=$GUEST_OUT
case "$VB" in /*) ;; *) VB=$O/$VB ;; esac
W=/tmp/demo; mkdir -p $W/bs/snd $W/db $W/krun; cd $W
. $R/tests/lib/wait.sh
say() { echo "demo-board [guest uptime $(($(ms) / 1000)) s]: $*"; }
fail=0
report() { echo "$*" >>$O/report.txt; }
: >$O/report.txt
. $R/tests/lib/handshake.sh
# host ACTION: have the host act on the simulator and wait for it (60 s).
host() { host_request "$O" "$@" || { say "$host_request_error"; return 1; }; }
KMP="" BSP="" VBP=""
stop_all() {
    for p in $VBP $BSP $KMP; do kill "$p" 2>/dev/null; done
}
t_start=$(ms)
say "guest script started"
# kmemleak keeps tracking, but its periodic scan (a minute after boot, then
# every 10 minutes) would take the emulated CPUs away from the call.
[ -w /sys/kernel/debug/kmemleak ] && echo scan=off >/sys/kernel/debug/kmemleak
# The bridge runs from the guest's tmpfs: every CLI call (status, call,
# hangup) would otherwise page the program in over 9p again.
mkdir -p /tmp/bin
if ! cp "$VB" /tmp/bin/voipbridge; then
    report "voipbridge:    $VB cannot be copied: no arm64 voipbridge for the guest"; exit 1
fi
VB=/tmp/bin/voipbridge
say "$(uname -srm), $(grep -c ^processor /proc/cpuinfo) CPUs"

# ---- the card on the RTOS FIFO
say "modprobe snd-voip"
if ! modprobe snd-voip; then
    report "card:          modprobe snd-voip FAILED"; dmesg | tail -n 20; exit 1
fi
aplay -l
dmesg | grep -m 1 "RTOS FIFO attached" | sed 's/^\[[^]]*\] //' >$W/attach.txt
csrc=$(amixer -c VoIP cget name='Capture Source' 2>/dev/null | sed -n 's/.*: values=//p')
psink=$(amixer -c VoIP cget name='Playback Sink' 2>/dev/null | sed -n 's/.*: values=//p')
cat /proc/asound/VoIP/rtos >$O/rtos-idle.txt 2>&1
report "card:          $(head -n 1 /proc/asound/cards | sed 's/^ *//')"
if [ -s $W/attach.txt ] && [ "$csrc" = 1 ] && [ "$psink" = 1 ]; then
    report "routing:       Capture Source = RTOS, Playback Sink = RTOS (from the device tree); $(cat $W/attach.txt)"
else
    report "routing:       FAILED: attach '$(cat $W/attach.txt)', Capture Source '$csrc', Playback Sink '$psink' (want 1 = RTOS)"
    fail=1
fi

# ---- registrar: kamailio with digest authentication for both phones
. $R/tests/lib/demo.sh
demo_registrar $W
if wait_for 30 grep -q "Listening on" $W/kamailio.log; then say "kamailio listening"; else say "kamailio not listening after 30 s"; fi

# ---- far end: baresip, registered, auto-answer, sends 440 Hz, records
. $R/tests/lib/baresip.sh
# tests/aec/board-echo.sh gives the far end another signal ($O/far.wav).
far_wav=$O/tone440.wav
[ -f $O/far.wav ] && far_wav=$O/far.wav
baresip_config $W/bs 5090 $far_wav "<sip:far@127.0.0.1>;auth_pass=farpass;regint=600;answermode=auto;audio_codecs=PCMU"
baresip -f $W/bs -t 900 </dev/null >$W/baresip.log 2>&1 &
BSP=$!

# ---- the board's phone: voipbridge on the card's application side
demo_bridge_config $W/bridge.toml hw:VoIP,0,0 $W/bridge.sock $O/bridge-audio.toml
st() { $VB status --config $W/bridge.toml 2>/dev/null; }
[ -f $O/vb-log ] && VB_LOG=$(cat $O/vb-log)
RUST_LOG=${VB_LOG:-info} $VB run --config $W/bridge.toml 2>$W/voipbridge.log &
VBP=$!
wait_for 60 test -S $W/bridge.sock
say "voipbridge and baresip started"
wait_for 90 sh -c "$VB status --config $W/bridge.toml | grep -q 'registration: registered'"
reg=$(st | sed -n 's/^registration: //p')
wait_for 60 grep -q "200 OK" $W/baresip.log
far_reg=$(grep -q "200 OK" $W/baresip.log && echo registered || echo "not registered")
t_ready=$(ms)
say "registrations done: voipbridge ${reg:-?}, baresip $far_reg"
report "registration:  voipbridge ${reg:-no answer}, baresip $far_reg (kamailio on 127.0.0.1:5060, digest auth; $(((t_ready - t_start) / 1000)) s after the script started); the call is routed by kamailio"
[ "$reg" = registered ] && [ "$far_reg" = registered ] || fail=1

# ---- the call
t0=$(ms)
say "calling sip:far@127.0.0.1"
$VB call sip:far@127.0.0.1 --config $W/bridge.toml
active=0
if wait_for 90 sh -c "$VB status --config $W/bridge.toml | grep -q '\[active\]'"; then
    active=1
    t1=$(ms)
    say "call active; audio for $CALL_SECONDS s"
    report "call setup:    $((t1 - t0)) ms (from running 'voipbridge call' until 'status' shows it active, CLI start-up in the emulated guest included)"
    # The audio runs for CALL_SECONDS; a snapshot of the FIFO and the CPUs halfway.
    sleep $((CALL_SECONDS / 2))
    cat /proc/asound/VoIP/rtos >$O/rtos-mid-call.txt 2>&1
    cat /proc/asound/VoIP/cable0 /proc/asound/VoIP/cable1 >$O/cables-mid-call.txt 2>&1
    top -b -n 1 >$O/top-mid-call.txt 2>&1
    # The latency figures while the RTOS runs (the snapshot after it
    # stopped shows a speaker ring that no longer drains).
    st >$O/status-mid-call.txt 2>&1
    sleep $((CALL_SECONDS - CALL_SECONDS / 2))
else
    report "call setup:    FAILED: not active within 90 s of 'voipbridge call'"
    fail=1
fi
# The RTOS stops first, so its counters and the speaker WAV cover the call
# only (the host ends the WAV there); then the counters, then the hang-up.
say "stopping the RTOS"
host stop || fail=1
[ $active = 0 ] || report "call audio:    $((($(ms) - t1) / 1000)) s from 'active' until the RTOS stopped"
[ $active = 0 ] || echo $(($(ms) - t1)) >$O/audio-ms
st >$O/status.txt
$VB status --json --config $W/bridge.toml >$O/status.json 2>/dev/null
cat $O/status.txt
if [ $active = 1 ]; then
    grep -E "codec|rtp:|rtcp:|latency:|latency \(1 s mean\):|devices:|echo canceller:|processing:" $O/status.txt | sed 's/^ *//; s/^/call:          /' >>$O/report.txt
    grep -E "latency:|latency \(1 s mean\):" $O/status-mid-call.txt 2>/dev/null | sed 's/^ *//; s/^/mid-call:      /' >>$O/report.txt
    # The legs mid-call, and how much of each is the RTOS rings (shown,
    # not judged: the debug guest's engine holds a large fill).
    demo_latency $O/status-mid-call.txt 20 info $O/cables-mid-call.txt >>$O/report.txt
    grep -q '\[active\]' $O/status.txt || { report "call:          no longer active after ${CALL_SECONDS} s"; fail=1; }
fi
say "hanging up"
$VB hangup --config $W/bridge.toml
wait_for 30 sh -c "! $VB status --config $W/bridge.toml | grep -q '\[active\]'"
cat /proc/asound/VoIP/rtos >$O/rtos-after.txt 2>&1
kill -TERM $VBP
wait $VBP; vbrc=$?
VBP=""
stop_all
wait $BSP 2>/dev/null
wait $KMP 2>/dev/null
BSP="" KMP=""

far=$(ls $W/bs/snd/*-dec.wav 2>/dev/null | head -n 1)
if [ -n "$far" ]; then cp "$far" $O/far-heard.wav; else report "far end:       baresip left no recording"; fail=1; fi
# what baresip sent (its encoder's input), to tell its own gaps from the path's
sent=$(ls $W/bs/snd/*-enc.wav 2>/dev/null | head -n 1)
[ -z "$sent" ] || cp "$sent" $O/far-sent.wav
cp $W/*.log $W/bridge.toml $W/kamailio.cfg $O/ 2>/dev/null
if [ "$vbrc" = 0 ]; then report "shutdown:      voipbridge exited 0 on SIGTERM"; else report "shutdown:      voipbridge exit $vbrc"; fail=1; fi
if rmmod snd_voip; then report "rmmod:         ok"; else report "rmmod:         failed"; fail=1; fi
if dmesg | grep -qE "BUG:|WARNING:|KASAN|giving silence"; then
    report "kernel log:    reports found: $(dmesg | grep -E "BUG:|WARNING:|KASAN|giving silence" | head -n 3 | tr '\n' ' ')"
    fail=1
else
    report "kernel log:    clean (no BUG, WARNING, KASAN, broken-ring report)"
fi
dmesg >$O/dmesg.txt
report "guest time:    $((($(ms) - t_start) / 1000)) s from script start to the end of the checks"
exit $fail
