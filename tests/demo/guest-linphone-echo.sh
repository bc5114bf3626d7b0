#!/bin/sh
# linphone's own echo canceller on the card (issue 18), inside the emulated
# board; sourced by guest-linphone.sh after its first call (it uses that
# script's W, R, step/pass/fail, lp_start, running/both_running, wait.sh
# and baresip.sh).
#
# The x86_64 board has no RTOS ring, so the acoustic path is made on the
# cable's bridge side: what linphone plays into hw:VoIP,0,P comes out of
# hw:VoIP,1,P (arecord), goes through a room (tests/aec/room.py: 60 ms,
# 10 dB down, one tap, -70 dBFS noise) and into hw:VoIP,1,C, which linphone
# captures from hw:VoIP,0,C as its microphone. The far end (a second
# baresip) sends a speech-like voice and records what linphone sends back:
# its own voice, unless linphone's canceller removes it.
# tests/aec/echo_report.py measures that (ERLE), once with linphone's
# canceller off and once on: with it on the echo must be LP_EC_MIN_ERLE dB
# (default 10) further down than with it off, and with it off under 3 dB
# (the path is really there). ec_delay is set as README "linphone" tells
# users: the devices' delays read from /proc during a call.
ECHO_SECONDS=${LP_ECHO_SECONDS:-14}
/usr/bin/python3 $R/tests/aec/room.py voice $W/voice.wav $((ECHO_SECONDS + 60)) || fail "room.py voice"

# echo_call NAME ECHOCANCELLATION: one call from linphonec (canceller on or
# off) to a fresh baresip that speaks the voice; the room runs between
# linphone's playback and capture for ECHO_SECONDS once both streams run.
# Leaves $W/NAME/far-heard.wav, spk.wav, room.json.
echo_call() {
    d=$W/$1; mkdir -p $d/bs/snd
    baresip_config $d/bs 5091 $W/voice.wav "<sip:far@127.0.0.1:5091>;regint=0;answermode=auto;audio_codecs=PCMU"
    baresip -f $d/bs -t 300 </dev/null >$d/baresip.log 2>&1 &
    bsp=$!
    cat >$d/lprc <<CFG
[sip]
sip_port=5076
default_proxy=-1
[rtp]
audio_rtp_port=7080
[sound]
echocancellation=$2
ec_filter=${LP_EC_FILTER:-MSSpeexEC}
ec_tail_len=${LP_EC_TAIL:-200}
${LP_EC_DELAY:+ec_delay=$LP_EC_DELAY}
CFG
    lp_start $d 4 || true
    echo "call sip:far@127.0.0.1:5091" >&4; step "$1: call sent"
    ok=0
    if wait_for 60 grep -q 'Call [0-9]* with .* connected' $d/linphonec.log && wait_for 60 both_running; then
        step "$1: streams run (capture $csub, playback $psub)"
        (arecord -q -D plughw:VoIP,1,$psub -t raw -f S16_LE -r 8000 -c 1 --buffer-time=100000 --period-time=10000 \
            -d $ECHO_SECONDS 2>$d/arecord.log |
            /usr/bin/python3 $R/tests/aec/room.py run --delay-ms 60 --erl-db 10 --noise-dbfs -70 \
                --spk $d/spk.wav --summary $d/room.json |
            aplay -q -D plughw:VoIP,1,$csub -t raw -f S16_LE -r 8000 -c 1 --buffer-time=100000 --period-time=10000 \
                2>$d/aplay.log) &
        roomp=$!
        # The echo path as README "linphone" tells users to measure it:
        # the devices' delays while the call runs, in ms, from linphone's
        # playback to its capture (here through the room's own two ends).
        sleep 4
        path_ms=$(( $(delay_ms 0p $psub) + $(delay_ms 1c $psub) + $(delay_ms 1p $csub) + $(delay_ms 0c $csub) ))
        echo "$path_ms" >$d/devices-ms
        step "$1: devices' delays $path_ms ms (linphone playback, room capture, room playback, linphone capture)"
        wait $roomp
        ok=1
        grep -o 'Echo canceller[^"]*\|MSWebRTCAEC[^"]*\|MSSpeexEC[^"]*\|echo[^"]*delay[^"]*' $d/linphone-debug.log 2>/dev/null | sort | uniq -c | head -n 8 >$d/ec-lines.txt
    fi
    echo "terminate" >&4; sleep 2; echo "quit" >&4
    exec 4>&-
    wait $LPP 2>/dev/null
    kill $bsp 2>/dev/null; wait $bsp 2>/dev/null
    far=$(ls $d/bs/snd/*-dec.wav 2>/dev/null | head -n 1)
    [ -n "$far" ] && cp "$far" $d/far-heard.wav
    [ $ok = 1 ] && [ -s $d/far-heard.wav ] && [ -s $d/room.json ]
}
# delay_ms DEV SUB: snd_pcm_delay of hw:VoIP,DEV's substream SUB (DEV: 0p,
# 0c, 1p, 1c) in ms at its rate, from /proc (0 when not running).
delay_ms() {
    f=$(sed -n 's/^delay *: *//p' /proc/asound/VoIP/pcm$1/sub$2/status 2>/dev/null)
    r=$(sed -n 's/^rate: \([0-9]*\).*/\1/p' /proc/asound/VoIP/pcm$1/sub$2/hw_params 2>/dev/null)
    if [ -n "$f" ] && [ -n "$r" ] && [ "$r" -gt 0 ]; then echo $((f * 1000 / r)); else echo 0; fi
}

# erle NAME: echo_report.py's ERLE for that call (prints its report).
erle() {
    /usr/bin/python3 $R/tests/aec/echo_report.py $W/$1/far-heard.wav $W/$1/spk.wav $W/$1/room.json \
        $W/$1/echo.png --min-erle -100 >$W/$1/report.txt 2>&1
    sed -n 's/^echo removed:  ERLE \(-*[0-9.]*\) dB.*/\1/p' $W/$1/report.txt
}
off="" on=""
if echo_call ec-off 0; then off=$(erle ec-off); fi
# ec_delay: the path measured in the first call plus the room's 60 ms,
# less a margin (60 ms) inside the 200 ms tail, so that the reference is
# never late: the devices' delays differ by 10-20 ms from one call to the
# next, and with the canceller on linphone paces its playback by its
# capture (measured: 195 then 176 ms; ec_delay 10 ms short of the first
# left the reference late in the second, and 2.5 dB of ERLE; README).
[ -n "${LP_EC_DELAY:-}" ] || LP_EC_DELAY=$(( $(cat $W/ec-off/devices-ms 2>/dev/null || echo 0) + 60 - ${LP_EC_MARGIN:-60} ))
[ "$LP_EC_DELAY" -ge 0 ] || LP_EC_DELAY=0
if echo_call ec-on 1; then on=$(erle ec-on); fi
for n in ec-off ec-on; do cp -r $W/$n $GUEST_OUT/linphone-$n 2>/dev/null; done
min=${LP_EC_MIN_ERLE:-10}
if [ -z "$off" ] || [ -z "$on" ]; then
    fail "linphone's echo canceller: a call did not run (off: '${off}', on: '${on}'; $W/ec-*/linphonec.log)"
elif awk -v a="$off" -v b="$on" -v m="$min" 'BEGIN { exit !(a < 3 && b - a >= m) }'; then
    pass "linphone's own canceller on the card's echo path: ERLE ${off} dB with it off, ${on} dB with it on (${LP_EC_FILTER:-MSSpeexEC}, ec_delay $LP_EC_DELAY ms, ec_tail_len ${LP_EC_TAIL:-200} ms; at least $min dB more)"
else
    fail "linphone's own canceller: ERLE ${off} dB off, ${on} dB on (want under 3 off and $min more on; $(cat $W/ec-on/report.txt | tr '\n' ' '))"
fi
