#!/bin/sh
# linphone on the card, inside the emulated board: the scenario our users
# started from. linphonec (Debian's linphone-cli) uses the card's application
# side (device 0) as its sound card and calls baresip; a 1 kHz tone played
# into the bridge side (hw:VoIP,1,N) reaches baresip through linphone, and
# baresip's 440 Hz reaches the bridge side through linphone's playback.
R=$SND_VOIP_ROOT
AT=$SND_VOIP_BIN/audiotest
W=/tmp/lp; mkdir -p $W/bs/snd /root/.local/share/linphone; cd $W
export HOME=/root
passed=0 failed=0
# step WHAT: note the guest's uptime at each step in steps.log (kept with the logs)
step() { read -r up _ </proc/uptime; echo "$up $(date +%T.%3N) $*" >>$W/steps.log; }
pass() { echo "PASS: $*"; passed=$((passed + 1)); step "PASS: $*"; }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); step "FAIL: $*"; }

modprobe snd-voip || { echo "FAIL: modprobe"; exit 1; }
$AT gen --wav --rate 8000 --freq 440 --seconds 60 $W/bs/tone440.wav
. $R/tests/lib/baresip.sh
baresip_config $W/bs 5090 $W/bs/tone440.wav "<sip:far@127.0.0.1:5090>;regint=0;answermode=auto;audio_codecs=PCMU"
baresip -f $W/bs -t 700 </dev/null >$W/baresip.log 2>&1 &
BSP=$!
cat >$W/lprc <<CFG
[sip]
sip_port=5075
default_proxy=-1
[rtp]
audio_rtp_port=7078
[sound]
echocancellation=0
CFG
# One linphonec session, driven through a FIFO: each command is sent once
# the answer to the one before has appeared, so a slow guest only makes the
# test take longer (waits are bounded; none is a fixed guess).
. $R/tests/lib/wait.sh
# lp_start DIR FD: linphonec with DIR/lprc, its commands through DIR/cmd on
# file descriptor FD (3 or 4), its logs in DIR; asks for the VoIP card and
# takes it. Sets LPP (its pid) and card (its number, empty if not listed);
# 1 when linphonec did not take the card.
lp_start() {
    rm -f $1/cmd; mkfifo $1/cmd
    timeout 600 linphonec -c $1/lprc -d 5 -l $1/linphone-debug.log <$1/cmd >$1/linphonec.log 2>&1 &
    LPP=$!; step "linphonec started ($1)"
    eval "exec $2>$1/cmd"
    echo "soundcard list" >&$2; step "sent: soundcard list"
    wait_for 240 grep -q ': ALSA.*: VoIP$' $1/linphonec.log || true
    card=$(sed -n 's/^\([0-9]*\): ALSA.*: VoIP$/\1/p' $1/linphonec.log | head -n 1)
    echo "soundcard use ${card:-1}" >&$2; step "sent: soundcard use ${card:-1}"
    wait_for 60 grep -q 'Using sound device' $1/linphonec.log
}
# in_log PATTERN: linphonec has printed a line matching PATTERN
in_log() { grep -q "$1" $W/linphonec.log 2>/dev/null; }
lp_start $W 3; took_card=$?
if [ -n "$card" ]; then pass "linphonec 'soundcard list' shows the VoIP card ($(grep ': VoIP$' $W/linphonec.log | head -n 1))"; else fail "no VoIP card in linphonec: $(tr '\n' ' ' <$W/linphonec.log)"; card=1; fi
[ "$took_card" = 0 ] || fail "linphonec did not take sound device $card: $(tail -n 3 $W/linphonec.log | tr '\n' ' ')"
echo "call sip:far@127.0.0.1:5090" >&3; step "sent: call sip:far@127.0.0.1:5090"
if wait_for 60 in_log 'Call [0-9]* with .* connected'; then pass "linphonec's call to baresip connected (${took} s after the call command was sent)"; else fail "call not connected: $(tail -n 5 $W/linphonec.log | tr '\n' ' ')"; fi
# linphone opens its ALSA streams once the call's media are set up; in a
# starved guest that can take seconds after "connected". Feed the card only
# once both of linphone's streams run on the application side, and feed the
# very substreams they use (the cable joins hw:VoIP,0,N and hw:VoIP,1,N).
running() { # running c|p: the device-0 substream linphone runs in that direction
    for s in /proc/asound/VoIP/pcm0$1/sub*; do
        grep -q '^state: RUNNING' $s/status 2>/dev/null && { echo ${s##*sub}; return 0; }
    done
    return 1
}
both_running() { csub=$(running c) && psub=$(running p); }
csub="" psub=""
wait_for 60 both_running
if [ -n "$csub" ] && [ -n "$psub" ]; then
    pass "linphone's streams run on the card: capture hw:VoIP,0,$csub and playback hw:VoIP,0,$psub (${took} s after the call connected)"
else
    fail "linphone's streams did not start on the card within 60 s: $(cat /proc/asound/VoIP/pcm0[cp]/sub*/status | grep '^state' | tr '\n' ' ')"
    csub=${csub:-0}; psub=${psub:-0}
fi
# Feed the card's bridge side; linphone captures it on device 0 and sends it.
$AT gen --wav --rate 8000 --freq 1000 --seconds 8 $W/tone1k.wav
arecord -q -D plughw:VoIP,1,$psub -f S16_LE -r 8000 -c 1 -d 8 $W/bridge-heard.wav 2>$W/arecord.log &
ARP=$!
aplay -q -D plughw:VoIP,1,$csub $W/tone1k.wav 2>$W/aplay.log &
APP=$!
step "tone and recording started"
# The cables' view half-way through: which ends ran, and how many frames
# went unheard ("dropped") or were read as silence.
sleep 4
cat /proc/asound/VoIP/cable* >$W/cables-mid.txt 2>&1
wait $APP $ARP
echo "terminate" >&3; step "sent: terminate"
sleep 2
echo "quit" >&3
exec 3>&-
wait $LPP
kill $BSP 2>/dev/null; wait $BSP 2>/dev/null
# cable N of the snapshot, on one line (for the FAIL lines)
cable() { sed -n "/^cable $1:/,/^cable /p" $W/cables-mid.txt | grep -v "^cable $(($1 + 1)):" | tr -s ' \n' ' '; }
alsa_errors=$(grep -ciE 'alsa.*(fail|error|broken pipe|xrun|underrun|overrun)' $W/linphone-debug.log 2>/dev/null)
far=$(ls $W/bs/snd/*-dec.wav 2>/dev/null | head -n 1)
# The 8 s tone at -6 dBFS through linphone's capture and encoder: measured
# 7.94 s, 1000.00 Hz, -5.99 dBFS, purity 1.000 (production kernel, host at
# load average 9). At least 7 s of it at -8 dBFS or more, 1 kHz +-1 %, 90 %
# purity in the median 0.1 s window.
if [ -n "$far" ] && $AT analyze --wav "$far" --freq 1000 --window 0.1 --min-seconds 7 --min-dbfs -8 >$W/far.txt 2>&1; then
    pass "baresip heard the 1 kHz fed into the card through linphone: $(grep channel $W/far.txt | head -n 1)"
else
    fail "baresip did not hear 1 kHz: $(cat $W/far.txt 2>/dev/null | tr '\n' ' ') (card mid-tone: $(cable $((csub * 2 + 1))); linphone's ALSA errors: ${alsa_errors:-?})"
fi
# This path runs through linphone's own jitter buffer, flow control and ALSA
# playback. When the emulated guest starves baresip, packets come in bursts,
# linphone's queue grows and its flow control cuts a few samples at a time
# to bring the latency down (the tone plays sharp), or conceals and
# stretches when they are late (flat), and between bursts it may underrun
# (its xruns, not the card's). Measured on the production kernel (host at
# load average 9), two runs: 8.00 s of 439.99 and 440.00 Hz, -5.98 dBFS,
# purity within 25 Hz 1.000 (within 10 Hz: 0.833, the Hann window's main
# lobe on 0.1 s is +-20 Hz, so 25 Hz is the resolution, not a slack),
# clock_ratio 1.0023 and 1.0003. The check: the power within 25 Hz of
# 440 Hz is the tone's (90 % in the median 0.1 s window; it was 50 %),
# median pitch within 2 % (5 % before; the
# slack for linphone's flow control on a starved guest), at -8 dBFS or
# more (was -20), for 7 of the 8 s (was 3): 1 kHz, noise, silence or a
# tone cut short fail.
# linphone-debug.log has its jitter buffer's view of the far end's clock
# (clock_ratio 1.0 is real time) and its flow-control lines.
ratio=$(grep -o 'clock_ratio=[0-9.]*' $W/linphone-debug.log 2>/dev/null | tail -n 1)
if $AT analyze --wav $W/bridge-heard.wav --freq 440 --tolerance 0.02 --window 0.1 --band 25 --min-purity 0.9 --min-seconds 7 --min-dbfs -8 >$W/br.txt 2>&1; then
    pass "linphone played baresip's 440 Hz into the card: $(grep channel $W/br.txt | head -n 1) (linphone's jitter buffer: ${ratio:-no clock_ratio})"
else
    fail "no 440 Hz from linphone's playback: $(cat $W/br.txt | tr '\n' ' ') (linphone's jitter buffer: ${ratio:-no clock_ratio}; card mid-tone: $(cable $((psub * 2))); linphone's ALSA errors: ${alsa_errors:-?})"
fi
cp $W/*.log $W/cables-mid.txt $GUEST_OUT/ 2>/dev/null; [ -n "$far" ] && cp "$far" $GUEST_OUT/far-heard.wav; cp $W/bridge-heard.wav $GUEST_OUT/ 2>/dev/null
# linphone's own echo canceller with an echo path on the card (issue 18):
# two more calls, canceller off and on (guest-linphone-echo.sh). On the
# production kernel only (make test-linphone alone, the default): on the
# debug kernel (make test) the emulated guest is too slow for linphone's
# canceller to converge (2026-12-06: ERLE 2.5 dB with it on; 23.5 dB on
# the production kernel) and the two calls take five minutes.
. $R/tests/lib/kernel.sh
if debug_kernel; then
    echo "NOTE: linphone's own echo canceller is not checked on the debug kernel (make test-linphone, on the production kernel, checks it)"
    step "NOTE: echo calls left out on the debug kernel"
else
    . $R/tests/demo/guest-linphone-echo.sh
fi
rmmod snd_voip && pass "rmmod after linphone exited" || fail "rmmod"
if dmesg | grep -qE "BUG:|WARNING:|KASAN"; then fail "kernel log has reports"; else pass "kernel log is clean"; fi
echo "$passed passed, $failed failed"
[ $failed = 0 ]
