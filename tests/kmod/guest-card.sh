#!/bin/sh
# run-guest: --pm
# Card tests, run inside the qemu guest by tests/kmod/run.sh (x86_64) and
# tests/kmod/run-arm64.sh (the arm64 board, no RTOS node).
# Usage: guest-card.sh [quick|full|long]
#   quick  a few formats, 6 s of drift (while working on the driver)
#   full   everything a change must pass (make test): a 16-stream matrix
#          covering every format, rate, channel count, mmap and period bound
#   long   the whole format x rate x channels matrix, 10 minutes of drift,
#          1000 load/unload cycles (make test-long)
#   matrix [SPEC...]  the parameter and slot checks, then only the matrix
#          (full's combinations, or these: SPEC as in batch() below), then
#          kmemleak and the kernel log: make test's arm64 card run. A
#          SCHED_FIFO 99 watchdog prints the CPU time of every busy task and
#          the cables' states every 60 s while the matrix runs.
# More checks live in tests/kmod/guest.d/*.sh: each is sourced, in order, in
# the same boot after the checks below (snd-voip unloaded on entry and on
# exit; lib.sh's check/pass/fail and $AT/$PC are theirs to use).
. "$SND_VOIP_ROOT/tests/kmod/lib.sh"
mode=${1:-full}
matrix_only=""
if [ "$mode" = matrix ]; then shift; matrix_only="$*"; set --; fi
# A second argument "trace" logs every command to $GUEST_OUT/trace.log.
if [ "${2:-}" = trace ]; then exec 2>"$GUEST_OUT/trace.log"; set -x; fi
# Record into the guest's tmpfs: writing every period to the 9p share stalls
# the recorder in the emulated guest. Failed recordings are copied to $GUEST_OUT.
mkdir -p /tmp/rec && cd /tmp/rec
[ -x "$AT" ] && [ -x "$PC" ] || { fail "test binaries missing: $AT, $PC (run-guest.sh --bin-dir)"; summary; exit 1; }
if [ -w /sys/kernel/debug/kmemleak ]; then echo clear >/sys/kernel/debug/kmemleak; fi
echo "guest-card: $(uname -srm), $(grep -c ^processor /proc/cpuinfo) CPUs, mode $mode"

# --- the card slot and the index/id/enable parameters ------------------------
# (The project began with a home-made driver whose fixed index collided
# with another card: "cannot find the slot for index 0 ... error -16".)
check "modprobe snd-dummy (another card, in slot 0)" modprobe snd-dummy
check "snd-dummy holds slot 0" sh -c 'grep -q "^ 0 \[Dummy" /proc/asound/cards'
check "modprobe snd-voip with slot 0 taken" modprobe snd-voip
check "snd-voip takes the next free slot (1), its id VoIP" sh -c 'grep -q "^ 1 \[VoIP *\]" /proc/asound/cards'
check "rmmod snd-voip" rmmod snd_voip
dmesg_at=$(dmesg | wc -l)
if modprobe snd-voip index=0 >index0.log 2>&1; then
    fail "index=0 with slot 0 taken: the module loaded"; rmmod snd_voip
else
    pass "index=0 with slot 0 taken: modprobe refuses the load"
    # README: "a fixed index that another card holds fails with error -16, EBUSY".
    check "... with EBUSY, the probe's own errno (modprobe said: $(tr '\n' ' ' <index0.log))" grep -q "Device or resource busy" index0.log
    check "... and a clear kernel log line: $(dmesg | tail -n +$((dmesg_at + 1)) | grep -m1 'slot for index' | sed 's/^\[[^]]*\] //')" \
        sh -c "dmesg | tail -n +$((dmesg_at + 1)) | grep -q 'cannot find the slot for index 0 .*error: -16'"
    check "no VoIP card after the refused load" sh -c '! grep -q "\[VoIP" /proc/asound/cards'
fi
check "modprobe snd-voip index=3 id=Phone" modprobe snd-voip index=3 id=Phone
check "index=3 puts the card in slot 3, id=Phone names it" sh -c 'grep -q "^ 3 \[Phone *\]" /proc/asound/cards && test -d /proc/asound/Phone'
check "hw:Phone,0,0 plays (the id is the ALSA device name)" \
    aplay -q -D hw:Phone,0,0 -t raw -f S16_LE -r 8000 -c 1 -d 1 /dev/zero
check "rmmod (index=3 id=Phone)" rmmod snd_voip
check "modprobe snd-voip enable=0 loads the module" modprobe snd-voip enable=0
check "enable=0 creates no card" sh -c '! grep -q "VoIP\|Phone" /proc/asound/cards && test -d /sys/module/snd_voip'
check "rmmod (enable=0)" rmmod snd_voip
check "rmmod snd-dummy" rmmod snd_dummy

# --- load, list ------------------------------------------------------------
check "modprobe snd-voip pcm_substreams=8" modprobe snd-voip pcm_substreams=8
aplay -l >aplay-l.txt 2>&1; arecord -l >arecord-l.txt 2>&1
check "aplay -l lists card VoIP device 0 'VoIP PCM' and device 1 'VoIP Bridge', 8 subdevices each" \
    sh -c 'grep -q "card [0-9]*: VoIP \[VoIP\], device 0: VoIP PCM" aplay-l.txt && grep -q "device 1: VoIP Bridge" aplay-l.txt && [ $(grep -c "Subdevices: 8/8" aplay-l.txt) = 2 ]'
check "arecord -l lists card VoIP" sh -c 'grep -q "device 0: VoIP PCM" arecord-l.txt && grep -q "device 1: VoIP Bridge" arecord-l.txt'
check "/proc/asound/VoIP has cable0 .. cable15" sh -c 'for i in $(seq 0 15); do test -r /proc/asound/VoIP/cable$i || exit 1; done'

# --- audio through the cables: the format x rate x channels matrix ----------
# Every combination both ways, 3 s of tone each, checked for frequency
# (+-1 %), length (3 s +-1 %), level (-6 dBFS, at least -7) and purity
# (90 % of the power at the tone, over the whole span: one lost or repeated
# frame fails it), and no xrun. Eight combinations run at once, one per
# substream; each cable carries its own frequency (substream n: 300 + 400n Hz
# from device 0 to 1, 500 + 400n Hz from 1 to 0), so audio that crossed
# into another cable fails the frequency or purity check.
# freq_of SUB DIR: the tone of substream SUB in direction a (0 -> 1) or b (1 -> 0).
freq_of() { if [ "$2" = a ]; then echo $((300 + 400 * $1)); else echo $((500 + 400 * $1)); fi; }
# The sixteen players and recorders run at SCHED_FIFO, as audio programs on
# a board do: starting sixteen processes under KASAN takes the guest's CPUs
# for a minute or two (measured: 125 s on the loaded host), and recorders
# at normal priority overran their 0.5 s buffers meanwhile, 300-900 ms
# each (the applications' xruns, not the card's). A guest where chrt fails
# fails the check below; nothing runs silently at normal priority. The
# arm64 board's busybox has no chrt: pcmstress's `rt` does the same there.
if command -v chrt >/dev/null; then RT="chrt -f 10"; else RT="${SND_VOIP_BIN:-/nonexistent}/pcmstress rt 10"; fi
check "SCHED_FIFO is available for the players and recorders ($RT)" $RT true || RT=""
# The tones and recordings live in the guest's tmpfs, not in $GUEST_OUT
# (9p: a tone written there took 1.1 s to generate, 0.5 s in tmpfs); a
# recording that fails its check is copied out.
MX=/tmp/card-matrix
mkdir -p "$MX"
# batch SPEC...: one job per substream, SPEC = FORMAT:RATE:CHANNELS[:EXTRA],
# EXTRA = extra aplay/arecord arguments joined by commas, or "mmap": both
# ends through the mmap'd buffer, by pcmcheck's mmap client (S16_LE only;
# 20 ms periods, 16 of them). Not aplay/arecord -M: their emulated
# read/write on the mapping busy-polls the position on any card whose
# position moves between periods (snd-dummy too: a whole vCPU each on the
# emulated arm64 board, which starved the guest; pcmcheck's mmap doc).
# start_end play|record DEV SUB FILE LOG: starts, in the background ($! is
# its pid, at $RT), the player or recorder of hw:VoIP,DEV,SUB for the job
# in $f $r $c $extra, FILE its audio, LOG its stderr.
start_end() {
    if [ "$extra" = mmap ]; then
        $RT $PC mmap "$1" "hw:VoIP,$2,$3" "$4" "$r" "$c" $((r / 50)) $((r / 50 * 16)) >/dev/null 2>"$5" &
    elif [ "$1" = play ]; then
        $RT aplay -D "hw:VoIP,$2,$3" -t raw -f "$f" -r "$r" -c "$c" $extra "$4" 2>"$5" &
    else
        $RT arecord -D "hw:VoIP,$2,$3" -t raw -f "$f" -r "$r" -c "$c" $extra "$4" 2>"$5" &
    fi
}
batch() {
    b_t0=$(date +%s)
    echo "guest-card: matrix batch: $*"
    b_n=0 b_recs="" b_plays="" b_files=""
    for spec in "$@"; do
        set -- $(echo "$spec" | tr ':' ' ')
        f=$1 r=$2 c=$3 extra=$(echo "${4:-}" | tr ',' ' ')
        for d in a b; do
            $AT gen --format "$f" --rate "$r" --channels "$c" --freq "$(freq_of $b_n $d)" --seconds 3 "$MX/tone-$b_n-$d.raw"
        done
        echo "$f $r $c $extra" >"job-$b_n"
        echo "$spec" >"spec-$b_n"
        # a: hw:VoIP,0,n -> hw:VoIP,1,n (cable 2n); b: hw:VoIP,1,n -> hw:VoIP,0,n (cable 2n+1)
        start_end record 1 "$b_n" "$MX/rec-$b_n-a.raw" "arecord-$b_n-a.log"
        b_recs="$b_recs $!"
        start_end record 0 "$b_n" "$MX/rec-$b_n-b.raw" "arecord-$b_n-b.log"
        b_recs="$b_recs $!"
        b_files="$b_files /proc/asound/VoIP/cable$((2 * b_n)) /proc/asound/VoIP/cable$((2 * b_n + 1))"
        b_n=$((b_n + 1))
    done
    # Play once every capture runs (process start is slow in the guest).
    wait_proc_t 60 "capture: running" $b_files || fail "batch $*: captures not all running after 60 s"
    i=0
    while [ $i -lt $b_n ]; do
        read -r f r c extra <"job-$i"
        start_end play 0 "$i" "$MX/tone-$i-a.raw" "aplay-$i-a.log"
        b_plays="$b_plays $!"
        start_end play 1 "$i" "$MX/tone-$i-b.raw" "aplay-$i-b.log"
        b_plays="$b_plays $!"
        i=$((i + 1))
    done
    echo "guest-card: ... captures ran after $(($(date +%s) - b_t0)) s; playing"
    wait $b_plays
    # Stop each recorder once it has read everything its cable carried.
    i=0
    while [ $i -lt $b_n ]; do read_up_to 1 $i; read_up_to 0 $i; i=$((i + 1)); done
    kill -INT $b_recs 2>/dev/null
    wait $b_recs
    # The logs that report something (one grep for the whole batch: each
    # process start costs the KASAN guest a fraction of a second).
    grep -liE "underrun|overrun|error|unable" arecord-*.log aplay-*.log >bad-logs.txt 2>/dev/null
    i=0
    while [ $i -lt $b_n ]; do
        read -r f r c extra <"job-$i"
        for d in a b; do
            if [ $d = a ]; then path="hw:VoIP,0,$i -> hw:VoIP,1,$i"; else path="hw:VoIP,1,$i -> hw:VoIP,0,$i"; fi
            hz=$(freq_of $i $d)
            name="tone $f $r Hz ${c} ch${extra:+ $extra}, $path: $hz Hz for 3 s at -6 dBFS, no xrun"
            why="" hard=""
            if has_line "arecord-$i-$d.log" bad-logs.txt || has_line "aplay-$i-$d.log" bad-logs.txt; then
                why=$(cat "arecord-$i-$d.log" "aplay-$i-$d.log" | grep -iE "underrun|overrun|error|unable" | head -n 3 | tr '\n' ' ')
                # An error other than the xrun itself (pcmcheck's mmap client
                # ends on its xrun with "Broken pipe": the same event as
                # aplay's "overrun!!!", which carries on).
                hard=$(cat "arecord-$i-$d.log" "aplay-$i-$d.log" | grep -iE "error|unable" | grep -viE "broken pipe|xrun" | head -n 1)
            fi
            if [ -n "$why" ] && [ "${B_RETRY:-0}" = 1 ] && [ -z "$hard" ]; then
                # An application xrun alone (the recorder or player was not
                # run in time: the emulated guest stalls for whole seconds
                # when the host is loaded) gets one more run of its
                # combination, in a batch of its own; a second xrun fails.
                # Wrong audio or an error never gets a second run.
                echo "RETRY: $name: $why"
                grep -qxF "$(cat "spec-$i")" retry.list 2>/dev/null || cat "spec-$i" >>retry.list
            elif [ -n "$why" ]; then
                fail "$name: $why"
            elif ! check "$name" $AT analyze --format "$f" --rate "$r" --channels "$c" --freq "$hz" --seconds 3 --min-dbfs -7 "$MX/rec-$i-$d.raw"; then
                cp "$MX/rec-$i-$d.raw" "$GUEST_OUT/rec-$(echo "$f-$r-$c-$i-$d$extra" | tr -d ' =-')".raw
            fi
        done
        i=$((i + 1))
    done
    rm -f "$MX"/rec-*.raw "$MX"/tone-*.raw
    echo "guest-card: ... batch done in $(($(date +%s) - b_t0)) s"
}
# make test: every format, every rate and both channel counts at least
# once (each format at its low and high rates), mmap, and the smallest and
# largest periods: two batches. The whole cross product (five batches, ~15
# minutes of the emulated guest) is the long mode's.
full_specs() {
    fs="S16_LE:8000:1 S16_LE:16000:2 S16_LE:32000:1 S16_LE:44100:2 S16_LE:48000:1"
    fs="$fs MU_LAW:8000:2 MU_LAW:16000:1 MU_LAW:48000:2 A_LAW:8000:1 A_LAW:32000:2 A_LAW:44100:1"
    fs="$fs S16_LE:16000:1:mmap"
    for p in 80 160 512 1024; do fs="$fs S16_LE:8000:1:--period-size=$p,--buffer-size=$((p * 16))"; done
    echo "$fs"
}
if [ "$mode" = matrix ]; then
    specs=$matrix_only
    [ -n "$specs" ] || specs=$(full_specs)
    $RT true && wd_rt=$(echo "$RT" | sed 's/ 10$/ 99/') || wd_rt=""
    # shellcheck disable=SC2016
    $wd_rt sh -c 'while sleep "$1"; do
        echo "guest-card: watchdog: $(head -n 1 /proc/stat); CPU ticks (user system) per task:"
        for p in /proc/[0-9]*; do
            [ -r "$p/stat" ] || continue
            set -- $(sed "s/.*) //" "$p/stat")
            [ $((${12} + ${13})) -gt 10 ] && echo "guest-card: watchdog:   ${p#/proc/} $(tr "\0" " " <"$p/cmdline" | cut -c1-60): ${12} ${13} state $1"
        done
        grep -h "capture: \|playback: " /proc/asound/VoIP/cable* 2>/dev/null | sort | uniq -c | sed "s/^/guest-card: watchdog: /"
    done' wd "${MATRIX_WATCHDOG:-60}" &
    wd_pid=$!
elif [ "$mode" = quick ]; then
    specs="S16_LE:48000:2 MU_LAW:8000:1 A_LAW:16000:2 S16_LE:16000:1:mmap"
elif [ "$mode" = full ]; then
    specs=$(full_specs)
else
    specs=""
    for f in S16_LE MU_LAW A_LAW; do
        for r in 8000 16000 32000 44100 48000; do
            for c in 1 2; do specs="$specs $f:$r:$c"; done
        done
    done
    # mmap access on both ends; periods from 80 to 1024 frames (16 periods
    # a buffer: the emulated guest under KASAN can stall an application for
    # tens of milliseconds).
    specs="$specs S16_LE:16000:1:mmap"
    for p in 80 160 256 512 1024; do specs="$specs S16_LE:8000:1:--period-size=$p,--buffer-size=$((p * 16))"; done
fi
t_matrix=$(date +%s)
retries=0
set -- $specs
# Eight combinations (sixteen streams) a batch; four on the arm64 board:
# its KASAN kernel under TCG took 25-45 s to start sixteen, and stalled
# them into application xruns in most batches (2026-12-05: four or five
# combinations run again per matrix, one twice).
per_batch=8
[ "$(uname -m)" = aarch64 ] && per_batch=4
while [ $# -gt 0 ]; do
    group=""
    k=0
    while [ $# -gt 0 ] && [ $k -lt $per_batch ]; do group="$group $1"; shift; k=$((k + 1)); done
    : >retry.list
    B_RETRY=1 batch $group
    if [ -s retry.list ]; then
        retries=$((retries + $(wc -l <retry.list)))
        B_RETRY=0 batch $(cat retry.list)
    fi
done
[ "$retries" -eq 0 ] || echo "guest-card: $retries combination(s) run again after application xruns (RETRY lines above)"
echo "guest-card: the matrix took $(($(date +%s) - t_matrix)) s"
if [ "$mode" = matrix ]; then
    kill "$wd_pid" 2>/dev/null
    check "rmmod after the matrix" rmmod snd_voip
    check_kmemleak
    check_dmesg
    summary
    exit
fi

# --- position vs CLOCK_MONOTONIC, pause/resume, xrun recovery (pcmcheck) -----------
secs=30; [ "$mode" = quick ] && secs=6; [ "$mode" = long ] && secs=600
check "capture position drift vs CLOCK_MONOTONIC over ${secs} s stays below one period" $PC drift hw:VoIP,1,0 8000 160 $secs
check "pause and resume on hw:VoIP,0,0: 1 s tone, 1 s gap, 1 s tone on hw:VoIP,1,0" $PC pause hw:VoIP,0,0 hw:VoIP,1,0
check "underrun on hw:VoIP,0,0 is reported (XRUN, EPIPE) and the stream recovers" $PC xrun hw:VoIP,0,0 hw:VoIP,1,0

# --- an end whose peer is idle runs in real time ------------------------------
# The card's own bound is one period (20 ms): the last period's timer. The
# rest is the emulated guest's wake-up latency under KASAN, measured at up
# to REALTIME_SLACK_MS (README, "Tests"): a stream running slow or fast
# by more than that fails.
slack=${REALTIME_SLACK_MS:-80}
check "idle capture: 2 s of silence in 2 s from the trigger (at most 20 + $slack ms late)" \
    $PC realtime hw:VoIP,0,1 capture 2 $((20 + slack))
check "playback with no reader: 2 s consumed in 2 s from the trigger (at most 20 + $slack ms late)" \
    $PC realtime hw:VoIP,0,2 playback 2 $((20 + slack))

# --- the second end of a cable is held to the first end's format --------------------
$AT gen --format S16_LE --rate 8000 --channels 1 --freq 1000 --seconds 1 s16.raw
arecord -D hw:VoIP,1,0 -t raw -f MU_LAW -r 8000 -c 1 /dev/null 2>/dev/null &
rp=$!
wait_proc "capture: running" /proc/asound/VoIP/cable0
if aplay -D hw:VoIP,0,0 -t raw -f S16_LE -r 8000 -c 1 s16.raw >constraint.log 2>&1; then
    fail "S16_LE playback accepted while the cable's capture end runs MU_LAW"
else
    check "S16_LE refused on hw:VoIP,0,0 while hw:VoIP,1,0 captures MU_LAW; ALSA offers only MU_LAW" \
        sh -c "grep -A2 'Available formats' constraint.log | grep -q 'MU_LAW' && ! grep -A3 'Available formats' constraint.log | grep -q S16_LE"
fi
check "plughw:VoIP,0,0 converts S16_LE to the cable's MU_LAW" \
    aplay -q -D plughw:VoIP,0,0 -t raw -f S16_LE -r 8000 -c 1 s16.raw
kill -INT $rp 2>/dev/null; wait $rp 2>/dev/null

# --- rmmod refused while open ---------------------------------------------------------
arecord -q -D hw:VoIP,1,0 -f S16_LE -r 8000 -d 30 /dev/null &
rp=$!
if ! wait_proc_t 30 "capture: running" /proc/asound/VoIP/cable0; then
    fail "rmmod while open: the capture never started"
elif rmmod snd_voip 2>/dev/null; then
    fail "rmmod refused while a stream is open"
else
    pass "rmmod refused while a stream is open"
fi
kill $rp 2>/dev/null; wait $rp 2>/dev/null
check "rmmod succeeds once closed" rmmod snd_voip

if [ "$mode" != quick ]; then
    # --- bad parameters are refused with a clear message ---------------------------
    if modprobe snd-voip pcm_substreams=9 2>/dev/null; then fail "pcm_substreams=9 refused"; rmmod snd_voip; else
        check "pcm_substreams=9 refused with a log line" sh -c 'dmesg | grep -q "pcm_substreams=9 is out of range"'; fi

    # --- load/unload cycles through modprobe/rmmod ----------------------------------
    # The count lives in guest.d/50-robust.sh (200 in-process finit_module/
    # delete_module cycles, the same kernel path in 0.5 s each); these few
    # prove the tools' path (modules.dep, the module's aliases) repeats.
    # 100 here took 160 s of make test's budget on the KASAN kernel.
    n=10; [ "$mode" = long ] && n=1000
    i=0 ok=1
    while [ $i -lt $n ]; do
        modprobe snd-voip && rmmod snd_voip || { ok=0; break; }
        i=$((i + 1))
    done
    if [ $ok = 1 ]; then pass "$n load/unload cycles"; else fail "load/unload cycle $i failed"; fi
fi

# --- more checks in the same boot (tests/kmod/guest.d) -----------------------------
for extra in "$SND_VOIP_ROOT"/tests/kmod/guest.d/*.sh; do
    [ -f "$extra" ] || continue
    echo "guest-card: $(basename "$extra")"
    cd /tmp/rec
    . "$extra"
    if [ -e /sys/module/snd_voip ]; then fail "$(basename "$extra") left snd-voip loaded"; rmmod snd_voip; fi
done

check_kmemleak
check_dmesg
summary
