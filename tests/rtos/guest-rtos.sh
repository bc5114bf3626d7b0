#!/bin/sh
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
. "$SND_VOIP_ROOT/tests/lib/handshake.sh"
mode=${1:-main}
O=$GUEST_OUT
# host ACTION...: have the host run an action on the region and wait for it.
host() { host_request "$O" "$@" || { fail "$host_request_error"; return 1; }; }
# expect_refused KIND ERRTEXT DMESGTEXT: modprobe fails with the errno's text
# and the kernel log says why.
expect_refused() {
    log_mark
    if out=$(modprobe snd-voip 2>&1); then
        fail "$1: the module loaded on a corrupt FIFO"
        rmmod snd-voip
        return
    fi
    if echo "$out" | grep -q "$2" && log_new | grep -q "$3"; then
        pass "$1: refused with '$2', log: $(log_new | grep "$3" | head -n 1 | sed 's/^\[[^]]*\] //')"
    else
        fail "$1: expected '$2' and a log line with '$3'; modprobe said: $out; log: $(log_new | grep snd_voip | tail -n 3 | tr '\n' ' ')"
    fi
    [ -e /proc/asound/VoIP ] && fail "$1: a card appeared anyway"
}
ctl() { amixer -c VoIP "$@"; }
# The kernel log is never cleared (check_dmesg reads all of it at the end):
# log_mark remembers where it ends, log_new prints what came since.
log_mark() { log_at=$(dmesg | wc -l); }
log_new() { dmesg | tail -n +$((log_at + 1)); }
log_at=0

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
    # An RTOS-routed end offers only the ring's format, rate and channels
    # (arecord then takes the nearest rate it is offered: 8 kHz).
    arecord -D hw:VoIP,0,0 --dump-hw-params -d 1 /dev/null >"$O/hw-params.txt" 2>&1
    check "hw:VoIP,0,0 capture offers only the ring's S16_LE, 8000 Hz, 1 channel" \
        sh -c "grep -Eq '^FORMAT: +S16_LE *\$' $O/hw-params.txt && grep -Eq '^RATE: +8000 *\$' $O/hw-params.txt && grep -Eq '^CHANNELS: +1 *\$' $O/hw-params.txt"
    arecord -D hw:VoIP,0,0 -f S16_LE -r 16000 -c 1 -d 1 /tmp/x.wav >"$O/rate16k.txt" 2>&1
    check "a 16 kHz capture request gets the ring's 8 kHz" grep -q "got = 8000Hz" "$O/rate16k.txt"
    amixer -c VoIP cset name='Playback Sink' Bridge >/dev/null
    aplay -D hw:VoIP,0,0 --dump-hw-params -d 1 /dev/zero >"$O/hw-params-bridge.txt" 2>&1
    check "routed to the bridge, hw:VoIP,0,0 playback offers every rate again" grep -Eq '^RATE: +\[8000 48000\]' "$O/hw-params-bridge.txt"
    amixer -c VoIP cset name='Playback Sink' RTOS >/dev/null

    # Audio both ways: the RTOS tone (1 kHz, +300 ppm) into arecord, and
    # aplay's 440 Hz into the RTOS speaker ring (the host's WAV). The two
    # run at real-time priority with 1 s buffers, as audio programs on a
    # board would: the emulated board's userspace is slow and an
    # application underrun would be the test's fault, not the driver's.
    RT=""
    chrt -f 10 true 2>/dev/null && RT="chrt -f 10"
    log_mark
    $RT arecord -D hw:VoIP,0,0 -f S16_LE -r 8000 -c 1 --buffer-size=8000 --period-size=400 -d 60 /tmp/mic.wav 2>"$O/arecord.log" &
    rec=$!
    sleep 2
    $RT aplay -D hw:VoIP,0,0 --buffer-size=8000 --period-size=400 "$O/tone440.wav" 2>"$O/aplay.log" &
    ply=$!
    # The follower at work, every 5 s (the host reads the trace).
    i=0
    while [ $i -lt 9 ]; do
        sleep 5
        { echo "t=$(( (i + 1) * 5 ))"; cat /proc/asound/VoIP/rtos /proc/asound/VoIP/cable1; } >>"$O/rtos-trace.txt"
        i=$((i + 1))
    done
    cat /proc/asound/VoIP/rtos >"$O/rtos-running.txt"
    cat /proc/asound/VoIP/cable1 >"$O/cable1-running.txt"
    cat /proc/asound/VoIP/cable0 >"$O/cable0-running.txt"
    wait $ply; p=$?
    wait $rec; r=$?
    cp /tmp/mic.wav "$O/mic.wav"
    [ $r = 0 ] && pass "arecord from the RTOS microphone ran 60 s" || fail "arecord exited $r: $(cat "$O/arecord.log")"
    [ $p = 0 ] && pass "aplay into the RTOS speaker ring completed" || fail "aplay exited $p: $(cat "$O/aplay.log")"
    check "arecord saw no overrun" sh -c "! grep -qi 'overrun' $O/arecord.log"
    check "aplay saw no underrun" sh -c "! grep -qi 'underrun' $O/aplay.log"
    check "/proc/asound/VoIP/rtos shows the follower and the measured RTOS clock" grep -q "rate shift .* ppm (at most [0-9]*), rtos clock [-+][0-9]* ±[0-9]* ppm over" "$O/rtos-running.txt"
    host stop

    # Run-time corruption: the RTOS hangs with broken counters mid-stream
    # (frozen, so nothing repairs them); Linux gives silence and one log
    # line, no crash.
    host init
    host start
    log_mark
    arecord -D hw:VoIP,0,0 -f S16_LE -r 8000 -c 1 -d 12 /tmp/corrupt.wav 2>"$O/arecord-corrupt.log" &
    rec=$!
    sleep 5
    host freeze
    host corrupt read-beyond-write
    wait $rec; r=$?
    cp /tmp/corrupt.wav "$O/corrupt-runtime.wav"
    [ $r = 0 ] && pass "arecord survives counters corrupted mid-stream" || fail "arecord exited $r after the corruption"
    check "the corruption was logged once" sh -c "test \$(dmesg | tail -n +$((log_at + 1)) | grep -c 'giving silence until the stream restarts') = 1"
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
