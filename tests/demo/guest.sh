#!/bin/sh
# The demo, inside the emulated board: load the card, start a far-end phone
# (baresip) and voipbridge on the card's bridge side, call, play a tone into
# the card's application side while recording it, and report.
R=$SND_VOIP_ROOT
AT=$SND_VOIP_BIN/audiotest VB=$SND_VOIP_BIN/voipbridge
W=/tmp/demo; mkdir -p $W/bs/snd; cd $W
say() { echo "demo: $*"; }
. $R/tests/lib/wait.sh
. $R/tests/lib/kernel.sh
fail=0
# Latency is judged on the production kernel (`make demo`); on the debug
# kernel (make test's run: KASAN, lockdep and kmemleak slow every syscall
# of the emulated guest) the legs are printed, not judged: they measure the
# checkers, and make test is a correctness run (README, Tests).
lat_mode=""
if debug_kernel; then
    lat_mode=info
    [ -w /sys/kernel/debug/kmemleak ] && echo scan=off >/sys/kernel/debug/kmemleak
    say "debug kernel: the latency legs are shown, not judged"
fi

say "modprobe snd-voip"; modprobe snd-voip || { echo "DEMO FAIL: modprobe"; exit 1; }
aplay -l

# Registrar: kamailio with digest authentication for both phones.
. $R/tests/lib/demo.sh
demo_registrar $W
wait_for 30 grep -q "Listening on" $W/kamailio.log || say "kamailio not listening after 30 s"

# Far end: baresip, registered, answering automatically, sending 440 Hz and recording what it hears.
$AT gen --wav --rate 8000 --freq 440 --seconds 30 $W/bs/tone440.wav
. $R/tests/lib/baresip.sh
baresip_config $W/bs 5090 $W/bs/tone440.wav "<sip:far@127.0.0.1>;auth_pass=farpass;regint=600;answermode=auto;audio_codecs=PCMU"
baresip -f $W/bs -t 300 </dev/null >$W/baresip.log 2>&1 &
BSP=$!

# The board's phone: voipbridge on hw:VoIP,1,0.
demo_bridge_config $W/bridge.toml hw:VoIP,1,0 $W/bridge.sock
RUST_LOG=${VB_LOG:-info} $VB run --config $W/bridge.toml 2>$W/voipbridge.log &
VBP=$!
wait_for 30 test -S $W/bridge.sock
wait_for 60 sh -c "$VB status --config $W/bridge.toml | grep -q 'registration: registered'"
reg=$($VB status --config $W/bridge.toml | sed -n 's/^registration: //p')
wait_for 60 grep -q "200 OK" $W/baresip.log
far_reg=$(grep -q "200 OK" $W/baresip.log && echo registered || echo "not registered")

# The application side: record what the far end says, then call and play 1 kHz.
# plughw: voipbridge runs the cable in MU_LAW (no transcoding); applications
# using S16 go through alsa-lib's plug conversion, as they would on a board.
arecord -q -D plughw:VoIP,0,0 -f S16_LE -r 8000 -c 1 -t wav $W/app-heard.wav 2>$W/arecord.log &
ARP=$!
$AT gen --wav --rate 8000 --freq 1000 --seconds 4 $W/app-says.wav
t0=$(date +%s%N)
$VB call sip:far@127.0.0.1 --config $W/bridge.toml
wait_for 30 sh -c "$VB status --config $W/bridge.toml | grep -q '\[active\]'"
t1=$(date +%s%N)
setup_ms=$(( (t1 - t0) / 1000000 ))
aplay -q -D plughw:VoIP,0,0 $W/app-says.wav 2>$W/aplay.log
# (the far end's 440 Hz keeps coming: a second more of it for the app)
sleep 1
cat /proc/asound/VoIP/cable0 /proc/asound/VoIP/cable1 >$W/cables-mid-call.txt
$VB status --json --config $W/bridge.toml >$W/status.json
$VB status --config $W/bridge.toml >$W/status.txt
cat $W/status.txt
# The legs settle once the playback fill has come down and the playout
# queue has shed what it no longer needs (README, Latency the bridge adds):
# wait up to 15 s more for them to be within issue 16's targets, then judge
# (tests/lib/demo.sh, demo_latency: the in leg against the fill the bridge holds).
legs() { $VB status --config $W/bridge.toml >$W/status-latency.txt && demo_latency $W/status-latency.txt 20 strict; }
legs_took=0
if [ -z "$lat_mode" ]; then wait_for 15 legs; legs_took=$took; else legs >/dev/null; fi
$VB hangup --config $W/bridge.toml
wait_for 30 sh -c "$VB status --config $W/bridge.toml | grep -q 'no calls'" || say "call still listed 30 s after the hang-up"
kill -INT $ARP; wait $ARP
kill -TERM $VBP; wait $VBP; vbrc=$?
kill $BSP 2>/dev/null; wait $BSP 2>/dev/null
kill $KMP 2>/dev/null; wait $KMP 2>/dev/null
cat /proc/asound/VoIP/cable0 /proc/asound/VoIP/cable1

far=$(ls $W/bs/snd/*-dec.wav 2>/dev/null | head -n 1)
cp $W/app-heard.wav $GUEST_OUT/app-heard.wav 2>/dev/null
[ -n "$far" ] && cp "$far" $GUEST_OUT/far-heard.wav
cp $W/*.log $W/status.txt $W/status-latency.txt $W/status.json $W/cables-mid-call.txt $GUEST_OUT/ 2>/dev/null

echo "================ snd-voip demo report ================"
echo "card:          $(head -n 1 /proc/asound/cards)"
if [ "$reg" = registered ] && [ "$far_reg" = registered ]; then r=PASS; else r=FAIL; fail=1; fi
echo "registration:  voipbridge $reg, baresip $far_reg (kamailio on 127.0.0.1:5060, digest auth); the call is routed by kamailio  [$r: both registered]"
# Set-up: INVITE, kamailio's 407 challenge, the authenticated INVITE,
# baresip's auto-answer, ACK, plus two CLI starts in the guest. Measured on
# the production kernel: 1.55 s with the 2-core host at load average 9
# (other builds and guests). SETUP_MAX_MS (5000: three times that) fails a
# call that waits on retransmissions (T1 = 500 ms: a lost INVITE costs
# 0.5 s, then 1 s, then 2 s) or on a stalled agent.
setup_max=${SETUP_MAX_MS:-5000}
if [ "$setup_ms" -le "$setup_max" ]; then r=PASS; else r=FAIL; fail=1; fi
echo "call setup:    ${setup_ms} ms (from running 'voipbridge call' until 'status' shows it active, CLI start-up in the emulated guest included)  [$r: at most $setup_max ms]"
grep -E "codec|rtp:|rtcp:|latency:|latency \(1 s mean\):|devices:" $W/status.txt | sed "s/^/call:          /"
# The legs as the bridge holds them once settled (PCMU, 20 ms packets).
demo_latency $W/status-latency.txt 20 $lat_mode || fail=1
echo "               (at $(sed -n 's/.*duration \([0-9.]* s\).*/\1/p' $W/status-latency.txt) of the call, $legs_took s after the first snapshot)"
if $AT analyze --wav "$far" --freq 1000 --window 0.1 --min-seconds 3 --min-dbfs -10 >$W/far.txt 2>&1; then r=PASS; else r=FAIL; fail=1; fi
echo "far end heard: $(grep channel $W/far.txt | head -n 1)  [$r: 1 kHz from aplay on hw:VoIP,0,0]"
if $AT analyze --wav $W/app-heard.wav --freq 440 --window 0.1 --min-seconds 3 --min-dbfs -10 >$W/app.txt 2>&1; then r=PASS; else r=FAIL; fail=1; fi
echo "app heard:     $(grep channel $W/app.txt | head -n 1)  [$r: 440 Hz from the far end on hw:VoIP,0,0]"
[ "$vbrc" = 0 ] && echo "shutdown:      voipbridge exited 0 on SIGTERM" || { echo "shutdown:      voipbridge exit $vbrc"; fail=1; }
rmmod snd_voip && echo "rmmod:         ok" || { echo "rmmod:         failed"; fail=1; }
if dmesg | grep -qE "BUG:|WARNING:|KASAN"; then echo "kernel log:    reports found"; dmesg | grep -E "BUG:|WARNING:|KASAN" | head; fail=1; else echo "kernel log:    clean"; fi
[ $fail = 0 ] && echo "DEMO PASS" || echo "DEMO FAIL"
exit $fail
