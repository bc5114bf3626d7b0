#!/bin/sh
# Card tests, run inside the qemu guest by tests/kmod/run.sh.
# Usage: guest-card.sh [quick]   (quick: one format/rate per direction)
. "$SND_VOIP_ROOT/tests/kmod/lib.sh"
mode=${1:-full}
# Record into the guest's tmpfs: writing every period to the 9p share stalls
# the recorder in the emulated guest. Failed recordings are copied to $GUEST_OUT.
mkdir -p /tmp/rec && cd /tmp/rec
echo clear >/sys/kernel/debug/kmemleak 2>/dev/null || true

# --- load, list ------------------------------------------------------------
check "modprobe snd-voip" modprobe snd-voip
aplay -l >aplay-l.txt 2>&1; arecord -l >arecord-l.txt 2>&1
check "aplay -l lists card VoIP device 0 'VoIP PCM' and device 1 'VoIP Bridge'" \
    sh -c 'grep -q "card [0-9]*: VoIP \[VoIP\], device 0: VoIP PCM" aplay-l.txt && grep -q "device 1: VoIP Bridge" aplay-l.txt'
check "arecord -l lists card VoIP" sh -c 'grep -q "device 0: VoIP PCM" arecord-l.txt && grep -q "device 1: VoIP Bridge" arecord-l.txt'
check "/proc/asound/VoIP has cable0 and cable1" sh -c 'test -r /proc/asound/VoIP/cable0 && test -r /proc/asound/VoIP/cable1'

# --- audio through the cable -------------------------------------------------
# tone FORMAT RATE CH [extra aplay/arecord args]: plays a 3 s 1 kHz tone both
# ways at once (hw:VoIP,0,0 -> hw:VoIP,1,0 on cable 0 and hw:VoIP,1,0 ->
# hw:VoIP,0,0 on cable 1) and checks both recordings.
tone() {
    f=$1 r=$2 c=$3; shift 3
    extra=$(echo "$*" | tr -d ' -')
    base="$f-$r-$c${extra:+-$extra}"
    $AT gen --format "$f" --rate "$r" --channels "$c" --freq 1000 --seconds 3 "tone-$base.raw"
    recs="" plays=""
    for dir in "0,0:1,0" "1,0:0,0"; do
        pd=${dir%%:*} cd=${dir##*:}
        tag="$base-$pd-to-$cd"
        arecord -D "hw:VoIP,$cd" -t raw -f "$f" -r "$r" -c "$c" "$@" "rec-$tag.raw" 2>"arecord-$tag.log" &
        recs="$recs $!"
    done
    # Start playing once both captures run (process start is slow in the guest).
    wait_proc "capture: running" /proc/asound/VoIP/cable0 /proc/asound/VoIP/cable1
    for dir in "0,0:1,0" "1,0:0,0"; do
        pd=${dir%%:*} cd=${dir##*:}
        tag="$base-$pd-to-$cd"
        aplay -D "hw:VoIP,$pd" -t raw -f "$f" -r "$r" -c "$c" "$@" "tone-$base.raw" 2>"aplay-$tag.log" &
        plays="$plays $!"
    done
    wait $plays
    sleep 0.3
    kill -INT $recs 2>/dev/null
    wait $recs
    for dir in "0,0:1,0" "1,0:0,0"; do
        pd=${dir%%:*} cd=${dir##*:}
        tag="$base-$pd-to-$cd"
        if grep -qiE "underrun|overrun|error|unable" "arecord-$tag.log" "aplay-$tag.log"; then
            fail "tone $tag: $(cat "arecord-$tag.log" "aplay-$tag.log" | grep -iE "underrun|overrun|error|unable" | head -n 3 | tr '\n' ' ')"
            continue
        fi
        check "tone $tag: 1 kHz for 3 s at -6 dBFS, no xrun" \
            $AT analyze --format "$f" --rate "$r" --channels "$c" --freq 1000 --seconds 3 --min-dbfs -7 "rec-$tag.raw" ||
            cp "rec-$tag.raw" "$GUEST_OUT/"
        rm -f "rec-$tag.raw"
    done
}
if [ "$mode" = quick ]; then
    tone S16_LE 48000 2
    tone MU_LAW 8000 1
else
    for f in S16_LE MU_LAW A_LAW; do
        for r in 8000 16000 32000 44100 48000; do
            for c in 1 2; do
                tone $f $r $c
            done
        done
    done
fi

# mmap access on both ends
tone S16_LE 16000 1 -M

# --- periods from 80 to 1024 frames without xruns (16 periods a buffer: the emulated
# guest under KASAN can stall an application for tens of milliseconds) ---------------
for p in 80 160 256 512 1024; do
    tone S16_LE 8000 1 --period-size=$p --buffer-size=$((p * 16))
done

# --- position vs CLOCK_MONOTONIC, pause/resume, xrun recovery (pcmcheck) -----------
PC=$SND_VOIP_ROOT/target/release/pcmcheck
[ -x "$PC" ] || PC=$SND_VOIP_ROOT/target/debug/pcmcheck
secs=30; [ "$mode" = quick ] && secs=6
check "capture position drift vs CLOCK_MONOTONIC over ${secs} s stays below one period" $PC drift hw:VoIP,1,0 8000 160 $secs
check "pause and resume on hw:VoIP,0,0: 1 s tone, 1 s gap, 1 s tone on hw:VoIP,1,0" $PC pause hw:VoIP,0,0 hw:VoIP,1,0
check "underrun on hw:VoIP,0,0 is reported (XRUN, EPIPE) and the stream recovers" $PC xrun hw:VoIP,0,0 hw:VoIP,1,0

# --- a capture whose peer is idle reads silence in real time ---------------------
start=$(date +%s%N)
arecord -q -D hw:VoIP,0,0 -t raw -f S16_LE -r 8000 -c 1 -d 2 idle.raw 2>idle.log
end=$(date +%s%N)
ms=$(( (end - start) / 1000000 ))
size=$(wc -c <idle.raw)
check "idle capture: 2 s of silence (32000 bytes, all zero) in real time (${ms} ms)" \
    sh -c "[ $size -eq 32000 ] && [ $ms -ge 1900 ] && ! od -An -v -tx1 idle.raw | grep -qv '^ *\(00 *\)*$'"

# --- a playback nobody reads is consumed in real time -------------------------------
$AT gen --format S16_LE --rate 8000 --channels 1 --freq 1000 --seconds 2 noreader.raw
start=$(date +%s%N)
aplay -q -D hw:VoIP,0,0 -t raw -f S16_LE -r 8000 -c 1 noreader.raw 2>noreader.log
end=$(date +%s%N)
ms=$(( (end - start) / 1000000 ))
check "playback with no reader: 2 s consumed in real time (${ms} ms), no error" \
    sh -c "[ $ms -ge 1900 ] && [ ! -s noreader.log ]"

# --- the second end of a cable is held to the first end's format --------------------
arecord -D hw:VoIP,1,0 -t raw -f MU_LAW -r 8000 -c 1 /dev/null 2>/dev/null &
rp=$!
wait_proc "capture: running" /proc/asound/VoIP/cable0
if aplay -D hw:VoIP,0,0 -t raw -f S16_LE -r 8000 -c 1 noreader.raw >constraint.log 2>&1; then
    fail "S16_LE playback accepted while the cable's capture end runs MU_LAW"
else
    check "S16_LE refused on hw:VoIP,0,0 while hw:VoIP,1,0 captures MU_LAW; ALSA offers only MU_LAW" \
        sh -c "grep -A2 'Available formats' constraint.log | grep -q 'MU_LAW' && ! grep -A3 'Available formats' constraint.log | grep -q S16_LE"
fi
check "plughw:VoIP,0,0 converts S16_LE to the cable's MU_LAW" \
    aplay -q -D plughw:VoIP,0,0 -t raw -f S16_LE -r 8000 -c 1 noreader.raw
kill -INT $rp 2>/dev/null; wait $rp 2>/dev/null

# --- rmmod refused while open ---------------------------------------------------------
arecord -q -D hw:VoIP,1,0 -f S16_LE -r 8000 -d 5 /dev/null &
rp=$!
sleep 1
if rmmod snd_voip 2>/dev/null; then fail "rmmod refused while a stream is open"; else pass "rmmod refused while a stream is open"; fi
kill $rp 2>/dev/null; wait $rp 2>/dev/null
check "rmmod succeeds once closed" rmmod snd_voip

if [ "$mode" != quick ]; then
    # --- 8 cables at once ----------------------------------------------------------
    check "modprobe snd-voip pcm_substreams=8" modprobe snd-voip pcm_substreams=8
    $AT gen --format S16_LE --rate 8000 --channels 1 --freq 1000 --seconds 3 tone8.raw
    recs="" plays="" files=""
    for n in 0 1 2 3 4 5 6 7; do
        arecord -q -D hw:VoIP,1,$n -t raw -f S16_LE -r 8000 -c 1 rec8-$n.raw 2>rec8-$n.log &
        recs="$recs $!"
        files="$files /proc/asound/VoIP/cable$((2 * n))"
    done
    wait_proc "capture: running" $files
    for n in 0 1 2 3 4 5 6 7; do
        aplay -q -D hw:VoIP,0,$n -t raw -f S16_LE -r 8000 -c 1 tone8.raw 2>play8-$n.log &
        plays="$plays $!"
    done
    wait $plays
    sleep 0.3
    kill -INT $recs 2>/dev/null
    wait $recs
    for n in 0 1 2 3 4 5 6 7; do
        check "8 cables: substream $n carries its tone" \
            $AT analyze --format S16_LE --rate 8000 --channels 1 --freq 1000 --seconds 3 --min-dbfs -10 rec8-$n.raw
    done
    check "rmmod (8 cables)" rmmod snd_voip

    # --- bad parameters are refused with a clear message ---------------------------
    if modprobe snd-voip pcm_substreams=9 2>/dev/null; then fail "pcm_substreams=9 refused"; rmmod snd_voip; else
        check "pcm_substreams=9 refused with a log line" sh -c 'dmesg | grep -q "pcm_substreams=9 is out of range"'; fi

    # --- 100 load/unload cycles ----------------------------------------------------
    i=0 ok=1
    while [ $i -lt 100 ]; do
        modprobe snd-voip && rmmod snd_voip || { ok=0; break; }
        i=$((i + 1))
    done
    if [ $ok = 1 ]; then pass "100 load/unload cycles"; else fail "load/unload cycle $i failed"; fi
fi

check_kmemleak
check_dmesg
summary
