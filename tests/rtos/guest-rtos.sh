#!/bin/sh
# STATUS: written, not yet run and not part of `make test` (its host runner, tests/rtos/run.sh, and tools/rtos-sim are still to come: issue #5).
# Guest side of the RTOS FIFO tests (tests/rtos/run.sh boots the emulated
# arm64 board and runs this with busybox and Debian's arm64 alsa-utils).
#
#   guest-rtos.sh main      the card on the FIFO: audio both ways, controls,
#                           clock following, run-time and probe-time corruption
#   guest-rtos.sh small     the DT region is smaller than a ring header
#   guest-rtos.sh nonode    a board without the node gets the plain card
#
# The host plays the RTOS with tools/rtos-sim on the region file; the guest
# asks it for actions through $GUEST_OUT (request.N -> done.N), and leaves
# recordings there for the host to analyse (audiotest does not run here).
. "$SND_VOIP_ROOT/tests/kmod/lib.sh"
mode=${1:-main}
O=$GUEST_OUT
seq=0
# host ACTION...: have the host run an action on the region and wait for it.
host() {
    seq=$((seq + 1))
    echo "$*" >"$O/request.$seq.tmp" && mv "$O/request.$seq.tmp" "$O/request.$seq"
    i=0
    while [ ! -e "$O/done.$seq" ]; do
        sleep 0.2; i=$((i + 1))
        [ $i -lt 300 ] || { fail "host action '$*' not done within 60 s"; return 1; }
    done
    [ "$(cat "$O/done.$seq")" = 0 ] || { fail "host action '$*' failed"; return 1; }
}
# expect_refused KIND ERRTEXT DMESGTEXT: modprobe fails with the errno's text
# and the kernel log says why.
expect_refused() {
    dmesg -c >/dev/null
    if out=$(modprobe snd-voip 2>&1); then
        fail "$1: the module loaded on a corrupt FIFO"
        rmmod snd-voip
        return
    fi
    if echo "$out" | grep -q "$2" && dmesg | grep -q "$3"; then
        pass "$1: refused with '$2', log: $(dmesg | grep "$3" | head -n 1 | sed 's/^\[[^]]*\] //')"
    else
        fail "$1: expected '$2' and a log line with '$3'; modprobe said: $out; log: $(dmesg | grep snd_voip | tail -n 3 | tr '\n' ' ')"
    fi
    [ -e /proc/asound/VoIP ] && fail "$1: a card appeared anyway"
}
ctl() { amixer -c VoIP "$@"; }

case "$mode" in
main)
    check "modprobe snd-voip binds the device-tree node" modprobe snd-voip
    check "card VoIP is listed" grep -q "VoIP" /proc/asound/cards
    check "the FIFO was attached" sh -c 'dmesg | grep -q "RTOS FIFO attached"'
    aplay -l >"$O/aplay-l.txt" 2>&1
    check "aplay -l shows both devices" grep -q "VoIP Bridge" "$O/aplay-l.txt"
    ctl controls >"$O/controls.txt" 2>&1
    check "controls Capture Source and Playback Sink exist" sh -c "grep -q \"'Capture Source'\" $O/controls.txt && grep -q \"'Playback Sink'\" $O/controls.txt"
    check "Capture Source defaults to RTOS (device tree)" sh -c "amixer -c VoIP cget name='Capture Source' | grep -q ': values=1'"
    check "Playback Sink defaults to RTOS (device tree)" sh -c "amixer -c VoIP cget name='Playback Sink' | grep -q ': values=1'"
    check "Playback Sink can be set to Both" sh -c "amixer -c VoIP cset name='Playback Sink' Both | grep -q ': values=2'"
    check "Playback Sink back to RTOS" sh -c "amixer -c VoIP cset name='Playback Sink' RTOS | grep -q ': values=1'"
    if amixer -c VoIP cset name='Capture Source' 7 >/dev/null 2>&1 && amixer -c VoIP cget name='Capture Source' | grep -q ': values=7'; then
        fail "an out-of-range Capture Source was accepted"
    else
        pass "an out-of-range Capture Source is refused"
    fi
    cat /proc/asound/VoIP/rtos >"$O/rtos-idle.txt"
    check "/proc/asound/VoIP/rtos shows the running RTOS producer" grep -q "microphone: S16_LE 8000 Hz 1 ch" "$O/rtos-idle.txt"
    # A format other than the ring's is refused on an RTOS-routed end.
    if arecord -D hw:VoIP,0,0 -f S16_LE -r 16000 -c 1 -d 1 /tmp/x.wav >/dev/null 2>&1; then
        fail "capture at 16 kHz from an 8 kHz RTOS ring was accepted"
    else
        pass "capture in another format than the ring's is refused"
    fi

    # Audio both ways: the RTOS tone (1 kHz, +300 ppm) into arecord, and
    # aplay's 440 Hz into the RTOS speaker ring (the host's WAV).
    dmesg -c >/dev/null
    arecord -D hw:VoIP,0,0 -f S16_LE -r 8000 -c 1 --buffer-size=4000 --period-size=400 -d 60 /tmp/mic.wav 2>"$O/arecord.log" &
    rec=$!
    sleep 2
    aplay -D hw:VoIP,0,0 --buffer-size=4000 --period-size=400 "$O/tone440.wav" 2>"$O/aplay.log" &
    ply=$!
    sleep 45
    cat /proc/asound/VoIP/rtos >"$O/rtos-running.txt"
    cat /proc/asound/VoIP/cable1 >"$O/cable1-running.txt"
    cat /proc/asound/VoIP/cable0 >"$O/cable0-running.txt"
    wait $ply; p=$?
    wait $rec; r=$?
    cp /tmp/mic.wav "$O/mic.wav"
    [ $r = 0 ] && pass "arecord from the RTOS microphone ran 60 s" || fail "arecord exited $r: $(cat "$O/arecord.log")"
    [ $p = 0 ] && pass "aplay into the RTOS speaker ring completed" || fail "aplay exited $p: $(cat "$O/aplay.log")"
    check "arecord saw no overrun" sh -c "! grep -qi 'overrun' $O/arecord.log"
    check "the microphone clock follows the RTOS (rate shift shown)" grep -q "rate shift +" "$O/cable1-running.txt"
    host stop

    # Run-time corruption: the RTOS breaks its counters mid-stream; Linux
    # gives silence and one log line, no crash.
    host init
    host start
    dmesg -c >/dev/null
    arecord -D hw:VoIP,0,0 -f S16_LE -r 8000 -c 1 -d 12 /tmp/corrupt.wav 2>"$O/arecord-corrupt.log" &
    rec=$!
    sleep 5
    host corrupt read-beyond-write
    wait $rec; r=$?
    cp /tmp/corrupt.wav "$O/corrupt-runtime.wav"
    [ $r = 0 ] && pass "arecord survives counters corrupted mid-stream" || fail "arecord exited $r after the corruption"
    check "the corruption was logged once" sh -c 'test "$(dmesg | grep -c "giving silence until the stream restarts")" = 1'
    cat /proc/asound/VoIP/rtos >"$O/rtos-corrupt.txt"
    host stop
    check "rmmod snd-voip" rmmod snd-voip

    # Probe-time corruption: each bad header refuses the module with its errno.
    for case in "bad-magic|No such device|bad magic" \
        "bad-version|Protocol error|protocol version" \
        "oversized-ring|File too large|does not fit the region" \
        "read-beyond-write|Numerical result out of range|read counter ahead of write" \
        "bad-rate|Invalid argument|format, rate or channels"; do
        kind=${case%%|*}; rest=${case#*|}; err=${rest%%|*}; why=${rest#*|}
        host init && host corrupt "$kind" && expect_refused "$kind" "$err" "$why"
    done
    host init
    check "a repaired FIFO loads again" modprobe snd-voip
    check "rmmod after repair" rmmod snd-voip
    ;;
small)
    expect_refused "region smaller than a ring header" "No space left on device" "region smaller than a ring header"
    ;;
nonode)
    check "modprobe snd-voip without the node" modprobe snd-voip
    check "plain card VoIP is listed" grep -q "VoIP" /proc/asound/cards
    check "no RTOS controls on a board without the node" sh -c "! amixer -c VoIP controls | grep -q 'Capture Source'"
    check "no /proc/asound/VoIP/rtos" sh -c "! test -e /proc/asound/VoIP/rtos"
    check "rmmod snd-voip" rmmod snd-voip
    ;;
esac
check_dmesg
summary
