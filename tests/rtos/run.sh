#!/usr/bin/env bash
# The RTOS audio FIFO on the emulated arm64 board (issue #5's tests).
#
# The host plays the RTOS core with tools/rtos-sim on the board's RAM file
# (qemu memory-backend-file,share=on), the guest runs tests/rtos/guest-rtos.sh
# with Debian's arm64 alsa-utils and a static arm64 tests/pcmstress. Three
# boots:
#
#   main    DTB with the node (Capture Source / Playback Sink = RTOS): the
#           simulator, a 32-bit core speaking protocol 1.0 (each counter
#           stored low word then high word, 2 ms apart) whose counters start
#           25 s of audio below 2^32, feeds 1 kHz at -6 dBFS peak into the
#           microphone ring at +300 ppm and drains the speaker ring into a
#           WAV; arecord on hw:VoIP,0,0 records 60 s, aplay on hw:VoIP,0,0
#           plays 40 s of 440 Hz, both across the carry; then (a 1.1 RTOS)
#           Playback Sink = Both with the bridge capture checked
#           sample-exact, route changes after prepare, pause/resume and
#           suspend/resume on RTOS ends, the delay against the ring's fill,
#           a stress run with route changes, run-time corruption, the
#           module parameters, every probe-time corruption (the guest asks
#           the host to init/start/stop/status/corrupt through request.N /
#           done.N files in the shared output directory);
#   small   a DT region smaller than one ring header;
#   nonode  a board without the node.
# The host then checks the recordings (frequency, level, length, purity)
# and the simulator's counters (no overrun, no underrun while playing).
#
# usage: tests/rtos/run.sh [--module ARM64_KO] [--keep DIR]
#   --keep DIR  leave the RAM file, recordings, logs and guest output in DIR
# Needs: make setup, make bridge (the host's rtos-sim and audiotest), BOARD=qemu-arm64
# make kernel (make test-rtos does all three).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export BOARD=qemu-arm64

ko="" keep=""
while [ $# -gt 0 ]; do
    case "$1" in
        --module) ko=$(readlink -f "$2"); shift 2 ;;
        --keep) keep=$2; shift 2 ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "rtos/run: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

. "$root/tests/lib/host.bash"
. "$root/tests/lib/handshake.sh"
if [ -n "$keep" ]; then
    rm -rf "$dir"; mkdir -p "$keep"; dir=$(readlink -f "$keep")
    trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
fi

kernel=$("$root/scripts/kernel.sh" --print-kernel)
kdir=$("$root/scripts/kernel.sh" --print-kdir)
[ -f "$kernel" ] || { echo "rtos/run: $kernel not built: run 'BOARD=qemu-arm64 make kernel'" >&2; exit 2; }
rootfs=$("$root/scripts/arm64-rootfs.sh")
[ -n "$ko" ] || ko=$("$root/scripts/kmod-arm64.sh" "$kdir")
# The static arm64 pcmstress, shared with the guest as $SND_VOIP_BIN.
psbin=$(dirname "$("$root/tests/pcmstress/build.sh" arm64)")
# The host's rtos-sim and audiotest: the tests' builds (make bridge), as
# the board demo uses them (tests/demo/board.sh).
bindir=${SND_VOIP_BIN:-$("$root/scripts/cargo-ci.sh" print-bin)}
SIM=$bindir/rtos-sim
AT=$bindir/audiotest
[ -x "$SIM" ] && [ -x "$AT" ] || { echo "rtos/run: $SIM or $AT missing: run 'make bridge'" >&2; exit 2; }

mem=512 smp=2
ram=$dir/ram
# The emulated board's clock (TCG) wanders against the host's, where the
# simulator runs, by up to a few thousand ppm when the host is busy: far
# more than a crystal's +-100 ppm. Let the follower pull up to 1 %.
max_shift=10000
sim_pid="" sim_n=0
# A real RTOS is never late: run the simulated one at real-time priority
# (SCHED_FIFO) so the emulator's busy vCPU threads cannot delay it.
rt=()
if chrt -f 20 true 2>/dev/null; then rt=(chrt -f 20); else echo "rtos/run: no SCHED_FIFO here; the simulator runs at normal priority" >&2; fi
sim() { "$SIM" "$1" --region "$ram" "${@:2}"; }
# sim_start [ARGS]: the RTOS core runs (mic: 1 kHz, -6 dBFS peak, +300 ppm;
# speaker -> spk.N.wav), with extra run ARGS.
sim_start() {
    sim_n=$((sim_n + 1))
    ${rt[@]+"${rt[@]}"} "$SIM" run --region "$ram" --tone 1000 --level -6 --ppm 300 --out "$dir/spk.$sim_n.wav" "$@" \
        >"$dir/sim.$sim_n.json" 2>"$dir/sim.$sim_n.log" &
    sim_pid=$!
    pids+=("$sim_pid")
}
# sim_stop: stops the simulator (SIGTERM: it prints its summary and exits
# 0); its exit status is judged: a simulator that failed is a failed run.
sim_stop() {
    [ -n "$sim_pid" ] || { echo "no simulator running" >&2; return 1; }
    kill -CONT "$sim_pid" 2>/dev/null || true
    kill -TERM "$sim_pid" 2>/dev/null || true
    local rc=0
    wait "$sim_pid" || rc=$?
    sim_pid=""
    if [ $rc = 0 ]; then
        pass "simulator run $sim_n exited 0"
    else
        fail "simulator run $sim_n exited $rc: $(tail -n 3 "$dir/sim.$sim_n.log")"
    fi
    return $rc
}
status_n=0
# request ACTION: one of the guest's requests (tests/lib/handshake.sh).
request() {
    # shellcheck disable=SC2086 # the request's words are the arguments
    set -- $1
    case "$1" in
        init) sim init "${@:2}" >>"$dir/sim-init.log" 2>&1 ;;
        start) sim_start "${@:2}" ;;
        stop) sim_stop ;;
        # The RTOS core hangs: its counters stay as they are.
        freeze) [ -n "$sim_pid" ] && kill -STOP "$sim_pid" ;;
        # What the RTOS side sees now (both rings' counters and fill).
        status) status_n=$((status_n + 1)); sim status --json >"$o/status.$status_n.json" ;;
        # sample N: N snapshots of both rings' fill as the RTOS sees them,
        # 50 ms apart, one number a line in fill-mic.txt and fill-spk.txt.
        sample)
            local i j
            for ((i = 0; i < ${2:-20}; i++)); do
                j=$(sim status --json) || return 1
                sed -n '1,/"speaker"/ s/.*"fill_frames": \([0-9]*\).*/\1/p' <<<"$j" >>"$o/fill-mic.txt"
                sed -n '/"speaker"/,$ s/.*"fill_frames": \([0-9]*\).*/\1/p' <<<"$j" >>"$o/fill-spk.txt"
                sleep 0.05
            done ;;
        corrupt) sim corrupt --what "$2" ${3:+--ring "$3"} >>"$dir/sim-corrupt.log" 2>&1 ;;
        *) echo "host: unknown request '$*'"; return 2 ;;
    esac
}
# boot NAME DTB_ARGS...: boot the board with guest-rtos.sh NAME, serving requests.
boot() {
    local name=$1; shift
    local rc=0 t0
    o=$dir/out-$name
    mkdir -p "$o"
    "$root/dts/mkboard-dtb.sh" --smp $smp --mem $mem "$@" -o "$dir/$name.dtb" >/dev/null
    [ -f "$dir/tone440.wav" ] && cp "$dir/tone440.wav" "$dir/count.wav" "$o/"
    t0=$(date +%s)
    "$root/tests/qemu/run-guest.sh" --kernel "$kernel" --kdir "$kdir" --module "$ko" \
        --mode rootdir --rootdir "$rootfs" --region "$ram" --dtb "$dir/$name.dtb" --pm --bin-dir "$psbin" \
        --append "snd_voip.rtos_max_shift_ppm=$max_shift" --mem $mem --smp $smp --timeout 1200 --out "$o" "$here/guest-rtos.sh" "$name" \
        >"$dir/console-$name.log" 2>&1 &
    local gpid=$!
    pids+=("$gpid")
    serve_requests "$o" "$gpid" request
    wait "$gpid" || rc=$?
    sed -n '/@@SND_VOIP_BEGIN/,/@@SND_VOIP_END/p' "$dir/console-$name.log" | grep -v '^@@' | grep -E '^(PASS|FAIL|SKIP|NOTE|host:|[0-9]+ passed)' || true
    grep '^host:' "$dir/console-$name.log" || true
    if [ "$rc" = 0 ]; then
        pass "guest $name: every in-guest check passed ($(($(date +%s) - t0)) s)"
    else
        fail "guest $name: exit status $rc (console: $dir/console-$name.log)"
        tail -n 30 "$dir/console-$name.log"
    fi
}
# jq-free JSON field of the simulator's one-line summary.
field() { sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" "$1"; }

# ---------------------------------------------------------------- boot main
truncate -s ${mem}M "$ram"
"$AT" gen --wav --format S16_LE --rate 8000 --channels 1 --freq 440 --seconds 40 --amplitude 0.5 "$dir/tone440.wav" >/dev/null
# The count sequence for Playback Sink = Both: 20 s, sample n = n mod 32768.
python3 - "$dir/count.wav" <<'PY'
import struct, sys, wave
with wave.open(sys.argv[1], "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)
    w.writeframes(b"".join(struct.pack("<h", n % 32768) for n in range(160000)))
PY
# A 32-bit RTOS speaking 1.0, its counters 25 s of audio below the carry.
carry=$((1 << 32))
start=$((carry - 25 * 8000))
sim init --start-frames "$start" --minor 0 >"$dir/sim-init.log"
sim_start --split-counters-us 2000
echo "== boot main: the card on the RTOS FIFO (a 32-bit simulator at +300 ppm, counters from 2^32 - 200000)"
boot main
[ -z "$sim_pid" ] || sim_stop || true

o=$dir/out-main
# Run 1 (the audio run across the carry, stopped by the guest's first 'host stop').
s1=$dir/sim.1.json
if [ -s "$s1" ]; then
    echo "simulator, run 1: $(cat "$s1")"
    [ "$(field "$s1" mic_reader_started)" = true ] && pass "the simulator saw Linux read the microphone ring" || fail "Linux never read the microphone ring"
    [ "$(field "$s1" mic_overruns)" = 0 ] && pass "microphone ring: no overrun in the audio run at +300 ppm" || fail "microphone ring overruns: $(field "$s1" mic_overruns)"
    [ "$(field "$s1" index_errors)" = 0 ] && pass "the simulator never saw impossible counters from Linux" || fail "index errors: $(field "$s1" index_errors)"
    [ "$(field "$s1" speaker_started)" = true ] && pass "Linux filled the speaker ring" || fail "the speaker ring never started"
    mw=$(sed -n 's/.*"mic_write_counter":\[\([0-9]*\),\([0-9]*\)\].*/\2/p' "$s1")
    sr=$(sed -n 's/.*"speaker_read_counter":\[\([0-9]*\),\([0-9]*\)\].*/\2/p' "$s1")
    if [ -n "$mw" ] && [ -n "$sr" ] && [ "$mw" -gt $((carry + 8000)) ] && [ "$sr" -gt $((carry + 8000)) ]; then
        pass "both RTOS counters crossed 2^32 while Linux streamed (microphone write $mw, speaker read $sr)"
    else
        fail "the counters did not cross 2^32 (microphone write ${mw:-?}, speaker read ${sr:-?}, carry $carry)"
    fi
else
    fail "no simulator summary for the audio run"
fi
# Run 2 (Both, route changes, pause, delay, suspend): the RTOS side never
# saw an xrun while Linux said it streamed, nor impossible counters.
s2=$dir/sim.2.json
if [ -s "$s2" ]; then
    echo "simulator, run 2: $(cat "$s2")"
    [ "$(field "$s2" index_errors)" = 0 ] && pass "run 2: the simulator never saw impossible counters from Linux" || fail "run 2 index errors: $(field "$s2" index_errors)"
    [ "$(field "$s2" speaker_underruns)" = 0 ] && pass "run 2: no speaker underrun while Linux streamed (pause and suspend cleared its state word)" || fail "run 2 speaker underruns: $(field "$s2" speaker_underruns)"
    [ "$(field "$s2" mic_overruns)" = 0 ] && pass "run 2: no microphone overrun while Linux streamed" || fail "run 2 microphone overruns: $(field "$s2" mic_overruns)"
else
    fail "no simulator summary for run 2"
fi
# count_ok WAV WHAT: the recording holds the whole count sequence, every
# sample once and in order (a dropped or repeated frame fails this).
count_ok() {
    local r
    if r=$(python3 - "$1" 2>&1 <<'PY'
import struct, sys, wave
with wave.open(sys.argv[1]) as w:
    x = struct.unpack("<%dh" % w.getnframes(), w.readframes(w.getnframes()))
start = next((i for i, v in enumerate(x) if v == 1), None)
if start is None or start == 0 or x[start - 1] != 0:
    sys.exit("the sequence does not start (no 0, 1)")
start -= 1
n = 0
while start + n < len(x) and x[start + n] == n % 32768:
    n += 1
print(f"{n} samples of the sequence in order from frame {start}")
if n != 160000:
    after = x[start + n:start + n + 4]
    sys.exit(f"{n} of 160000 samples in order, then {after} (expected {n % 32768})")
PY
    ); then
        pass "$2: $r"
    else
        fail "$2: $r"
    fi
}
count_ok "$o/both.wav" "Playback Sink = Both: the bridge capture hw:VoIP,1,0 got the playback sample-exact"
count_ok "$dir/spk.2.wav" "Playback Sink = Both: the RTOS speaker got the same playback sample-exact"
[ -f "$o/both-running.txt" ] && { echo "--- /proc/asound/VoIP/cable0 with Playback Sink = Both"; cat "$o/both-running.txt"; }
# tone_ok WAV HZ SECONDS WHAT: the recording holds one unbroken tone of HZ
# for SECONDS (+-1 %), at the -6 dBFS both sources play (peak 0.5; audiotest
# gives levels in dBFS of a full-scale sine), with 99 % of its power in the
# tone over the whole span: a single dropped or repeated frame fails this.
tone_ok() {
    local r
    if [ ! -f "$1" ]; then fail "$4: no recording $1"; return; fi
    if r=$("$AT" analyze --wav "$1" --freq "$2" --seconds "$3" --tolerance 0.01 --min-dbfs -6.5 --min-purity 0.99); then
        pass "$4: $2 Hz for $3 s, unbroken: $(echo "$r" | grep 'channel 0' | head -n1)"
    else
        fail "$4: $(echo "$r" | tr '\n' ' ')"
    fi
}
tone_ok "$o/mic.wav" 1000 60 "arecord hw:VoIP,0,0 (Capture Source RTOS) recorded the RTOS microphone"
tone_ok "$dir/spk.1.wav" 440 40 "aplay hw:VoIP,0,0 (Playback Sink RTOS) reached the RTOS speaker"
# The follower (snapshot at 47 s): the mean fill it steers is near its
# target and the shift is inside its bound. The emulated board's clock wanders
# against the host's by up to a few thousand ppm under load (TCG), so the
# shift follows the RTOS clock that Linux measures, not the simulator's +300.
if [ -f "$o/cable1-running.txt" ] && [ -f "$o/rtos-running.txt" ]; then
    c=$(grep 'capture: RTOS microphone ring' "$o/cable1-running.txt" || true)
    target=$(echo "$c" | sed -n 's/.*target fill \([0-9]*\),.*/\1/p')
    mean=$(echo "$c" | sed -n 's/.*mean fill \([0-9]*\)\..*/\1/p')
    u=$(grep -A2 '^microphone' "$o/rtos-running.txt" | grep 'used by cable' || true)
    shift_ppm=$(echo "$u" | sed -n 's/.*rate shift \([-+][0-9]*\) ppm (at most \([0-9]*\)).*/\1/p')
    max_ppm=$(echo "$u" | sed -n 's/.*rate shift [-+][0-9]* ppm (at most \([0-9]*\)).*/\1/p')
    measured=$(echo "$u" | sed -n 's/.*rtos clock \([-+][0-9]*\) \(±[0-9]*\) ppm over \([0-9]*\) s.*/\1 \2/p')
    echo "follower at 47 s: target $target, mean fill $mean, shift $shift_ppm ppm (bound $max_ppm), RTOS clock measured by Linux $measured ppm"
    if [ -n "$target" ] && [ -n "$mean" ] && [ $((mean - target)) -le 560 ] && [ $((target - mean)) -le 560 ]; then
        pass "the follower holds the microphone fill at its target: mean $mean, target $target (+-560: one period of each side)"
    else
        fail "microphone fill not held: mean '${mean:-?}' vs target '${target:-?}'"
    fi
    if [ -n "$shift_ppm" ] && [ -n "$max_ppm" ] && [ "${shift_ppm#[-+]}" -lt "$max_ppm" ]; then
        pass "the microphone clock shift $shift_ppm ppm is inside its bound ($max_ppm)"
    else
        fail "the microphone clock shift '${shift_ppm:-?}' is at or beyond its bound '${max_ppm:-?}'"
    fi
else
    fail "no /proc/asound/VoIP/cable1 or rtos snapshot"
fi
[ -f "$o/rtos-running.txt" ] && { echo "--- /proc/asound/VoIP/rtos while running"; cat "$o/rtos-running.txt"; }

# ---------------------------------------------------------------- boot small
echo "== boot small: a region smaller than one ring header"
boot small --size 0x80

# ---------------------------------------------------------------- boot nonode
echo "== boot nonode: a board without the node"
boot nonode --no-node

echo "rtos: $passed passed, $failed failed"
[ "$failed" = 0 ]
