#!/bin/sh
# linphone on the card, inside the emulated board: the scenario our users
# started from. linphonec (Debian's linphone-cli) uses the card's application
# side (device 0) as its sound card and calls baresip; a 1 kHz tone played
# into the bridge side (hw:VoIP,1,0) reaches baresip through linphone, and
# baresip's 440 Hz reaches the bridge side through linphone's playback.
R=$SND_VOIP_ROOT
BIN=$R/target/release; [ -x "$BIN/audiotest" ] || BIN=$R/target/debug
AT=$BIN/audiotest
W=/tmp/lp; mkdir -p $W/bs/snd /root/.local/share/linphone; cd $W
export HOME=/root
passed=0 failed=0
pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }

modprobe snd-voip || { echo "FAIL: modprobe"; exit 1; }
$AT gen --wav --rate 8000 --freq 440 --seconds 60 $W/bs/tone440.wav
. $R/tests/lib/baresip.sh
baresip_config $W/bs 5090 $W/bs/tone440.wav "<sip:far@127.0.0.1:5090>;regint=0;answermode=auto;audio_codecs=PCMU"
baresip -f $W/bs -t 120 </dev/null >$W/baresip.log 2>&1 &
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
(sleep 8; echo "soundcard list"; sleep 2; echo quit) | timeout 60 linphonec -c $W/lprc >$W/soundcards.log 2>&1
card=$(sed -n 's/^\([0-9]*\): ALSA.*: VoIP$/\1/p' $W/soundcards.log | head -n 1)
if [ -n "$card" ]; then pass "linphonec 'soundcard list' shows the VoIP card ($(grep ': VoIP' $W/soundcards.log | head -n 1))"; else fail "no VoIP card in linphonec: $(tr '\n' ' ' <$W/soundcards.log)"; card=1; fi
mkfifo $W/cmd
timeout 90 linphonec -c $W/lprc -d 5 -l $W/linphone-debug.log <$W/cmd >$W/linphonec.log 2>&1 &
LPP=$!
exec 3>$W/cmd
sleep 8
echo "soundcard use $card" >&3
sleep 1
echo "call sip:far@127.0.0.1:5090" >&3
i=0; while ! grep -q "Call [0-9]* with .* connected\|Call.*connected" $W/linphonec.log && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
if grep -q "connected" $W/linphonec.log; then pass "linphonec's call to baresip connected"; else fail "call not connected: $(tail -n 5 $W/linphonec.log | tr '\n' ' ')"; fi
sleep 2
# Feed the card's bridge side; linphone captures it on device 0 and sends it.
$AT gen --wav --rate 8000 --freq 1000 --seconds 5 $W/tone1k.wav
arecord -q -D plughw:VoIP,1,0 -f S16_LE -r 8000 -c 1 -d 6 $W/bridge-heard.wav 2>$W/arecord.log &
ARP=$!
aplay -q -D plughw:VoIP,1,0 $W/tone1k.wav 2>$W/aplay.log
wait $ARP
echo "terminate" >&3
sleep 2
echo "quit" >&3
exec 3>&-
wait $LPP
kill $BSP 2>/dev/null; wait $BSP 2>/dev/null
far=$(ls $W/bs/snd/*-dec.wav 2>/dev/null | head -n 1)
if [ -n "$far" ] && $AT analyze --wav "$far" --freq 1000 --window 0.1 --min-seconds 3 --min-dbfs -20 >$W/far.txt 2>&1; then
    pass "baresip heard the 1 kHz fed into the card through linphone: $(grep channel $W/far.txt | head -n 1)"
else
    fail "baresip did not hear 1 kHz: $(cat $W/far.txt 2>/dev/null | tr '\n' ' ')"
fi
# This path runs through linphone's own jitter buffer, flow control and ALSA
# playback in a slow emulated guest. When the guest starves baresip, packets
# come in bursts, linphone's queue grows and its flow control cuts a few
# samples at a time to bring the latency down (the tone plays a few per cent
# sharp), or conceals and stretches when they are late (a few per cent flat),
# and between bursts it may underrun (its xruns, not the card's). So the check
# is that the power within 25 Hz of 440 Hz is the tone's in most 0.1 s
# windows, at a median pitch within 5 %, for 3 s or more: 1 kHz, noise or
# silence still fail. linphone-debug.log has its jitter buffer's view of the
# far end's clock (clock_ratio 1.0 is real time) and its flow-control lines.
ratio=$(grep -o 'clock_ratio=[0-9.]*' $W/linphone-debug.log 2>/dev/null | tail -n 1)
if $AT analyze --wav $W/bridge-heard.wav --freq 440 --tolerance 0.05 --window 0.1 --band 25 --min-purity 0.5 --min-seconds 3 --min-dbfs -20 >$W/br.txt 2>&1; then
    pass "linphone played baresip's 440 Hz into the card: $(grep channel $W/br.txt | head -n 1) (linphone's jitter buffer: ${ratio:-no clock_ratio})"
else
    fail "no 440 Hz from linphone's playback: $(cat $W/br.txt | tr '\n' ' ') (linphone's jitter buffer: ${ratio:-no clock_ratio})"
fi
cp $W/*.log $GUEST_OUT/ 2>/dev/null; [ -n "$far" ] && cp "$far" $GUEST_OUT/far-heard.wav; cp $W/bridge-heard.wav $GUEST_OUT/ 2>/dev/null
rmmod snd_voip && pass "rmmod after linphone exited" || fail "rmmod"
if dmesg | grep -qE "BUG:|WARNING:|KASAN"; then fail "kernel log has reports"; else pass "kernel log is clean"; fi
echo "$passed passed, $failed failed"
[ $failed = 0 ]
