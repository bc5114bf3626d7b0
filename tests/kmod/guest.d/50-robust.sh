#!/bin/sh
# run-guest: --pm
# Robustness checks of the card (issue 12), inside the guest (x86_64 or
# the arm64 board) on the debug kernel (KASAN, lockdep, kmemleak): the
# control events, ends of different formats (EIO), suspend/resume through /sys/power/pm_test with streams running
# and paused, a stress program of parallel open/hw_params/prepare/trigger/
# close cycles with pauses and control changes, and load/unload cycles.
# Sourced by guest-card.sh from tests/kmod/guest.d (its check_kmemleak/
# check_dmesg/summary judge the kernel log afterwards), or run alone by
# tests/kmod/robust.sh (then it judges the log itself).
#
# The counts: ROBUST_STRESS_CYCLES and ROBUST_MOD_CYCLES, else by
# guest-card.sh's mode: 2000 stress cycles and 64 load/unload cycles
# (make test), long: 200000 and 10000 (make test-long). A cycle costs the
# KASAN guest 0.75 s; make test's 64 (48 s) find what every load and
# unload does wrong (kmemleak scans after them); the races a cycle rarely
# hits are the long tier's (make test had 200 until 2026-12-05: 149 s).
if [ -z "${passed+x}" ]; then
    . "$SND_VOIP_ROOT/tests/kmod/lib.sh"
    robust_alone=1
fi
. "$SND_VOIP_ROOT/tests/lib/wait.sh"
. "$SND_VOIP_ROOT/tests/lib/kernel.sh"
. "$SND_VOIP_ROOT/tests/kmod/lib-pm.sh"
if [ "${mode:-}" = long ]; then
    stress_cycles=${ROBUST_STRESS_CYCLES:-200000} mod_cycles=${ROBUST_MOD_CYCLES:-10000}
else
    stress_cycles=${ROBUST_STRESS_CYCLES:-2000} mod_cycles=${ROBUST_MOD_CYCLES:-64}
fi
mkdir -p /tmp/robust && cd /tmp/robust || exit 1

# A debug suite on a kernel without its checkers proves nothing: fail.
check "the kernel has KASAN, lockdep and kmemleak (debug.config)" \
    debug_checkers

# The test program, built for this guest's architecture by the host
# (tests/pcmstress/build.sh, called by tests/kmod/run.sh, run-arm64.sh and
# robust.sh) into the binaries shared with the guest.
PS=$SND_VOIP_BIN/pcmstress
check "pcmstress is in \$SND_VOIP_BIN ($PS)" test -x "$PS"
rmmod snd_voip 2>/dev/null
# Module init returns the probe's own errno (EINVAL here, not ENODEV).
if out=$(modprobe snd-voip pcm_substreams=0 2>&1); then
    fail "pcm_substreams=0 was accepted"; rmmod snd_voip
else
    check "pcm_substreams=0 refused with the probe's errno (Invalid argument) and a device-prefixed log line" \
        env OUT="$out" sh -c 'printf "%s\n" "$OUT" | grep -q "Invalid argument" && dmesg | grep -q "snd_voip snd_voip: pcm_substreams=0 is out of range"'
fi
check "modprobe snd-voip pcm_substreams=4" modprobe snd-voip pcm_substreams=4

# --- aloop's controls and their change events ---------------------------------
check "PCM Slave Active/Format/Rate/Channels and PCM Notify exist on both devices" sh -c '
    for d in 0 1; do for n in "PCM Notify" "PCM Slave Active" "PCM Slave Format" "PCM Slave Rate" "PCM Slave Channels"; do
        amixer -c VoIP cget "iface=PCM,name=$n,device=$d" >/dev/null || exit 1; done; done'
if amixer -c VoIP cset "iface=PCM,name=PCM Slave Active,device=1" 1 >/dev/null 2>&1; then
    fail "PCM Slave Active is read-only"
else
    pass "PCM Slave Active is read-only"
fi
$PS ctlwatch 25 >events.txt 2>&1 &
watch=$!
wait_for 30 grep -q WATCHING events.txt
$AT gen --format MU_LAW --rate 16000 --channels 1 --freq 1000 --seconds 1 mulaw.raw
$AT gen --format S16_LE --rate 8000 --channels 2 --freq 1000 --seconds 1 s16.raw
aplay -q -D hw:VoIP,0,0 -t raw -f MU_LAW -r 16000 -c 1 mulaw.raw
wait_for 10 grep -q "'PCM Slave Active' device 1 subdevice 0 value 0" events.txt
aplay -q -D hw:VoIP,0,1 -t raw -f S16_LE -r 8000 -c 2 s16.raw
wait_for 10 grep -q "'PCM Slave Active' device 1 subdevice 1 value 0" events.txt
aplay -q -D hw:VoIP,1,0 -t raw -f MU_LAW -r 16000 -c 1 mulaw.raw
wait_for 10 grep -q "'PCM Slave Active' device 0 subdevice 0 value 0" events.txt
kill $watch 2>/dev/null; wait $watch 2>/dev/null
cp events.txt "$GUEST_OUT/ctl-events.txt" 2>/dev/null
ev() { grep -c "$1" events.txt; }
check "events: the application's playback on 0,0 started and stopped: PCM Slave Active of device 1 went 1, then 0" \
    sh -c "grep \"'PCM Slave Active' device 1 subdevice 0\" events.txt | sed 's/.*value //' | tr '\n' ' ' | grep -q '^1 0 \$'"
check "events: its format (MU_LAW, 20) and rate (16000) were announced on device 1" \
    sh -c "grep -q \"'PCM Slave Format' device 1 subdevice 0 value 20\" events.txt && grep -q \"'PCM Slave Rate' device 1 subdevice 0 value 16000\" events.txt"
check "events: substream 1 has its own (8000 Hz on device 1 subdevice 1; its S16_LE stereo equals the default, so no event for those)" \
    sh -c "grep -q \"'PCM Slave Rate' device 1 subdevice 1 value 8000\" events.txt && ! grep -q \"'PCM Slave Format' device 1 subdevice 1\" events.txt && ! grep -q \"'PCM Slave Rate' device 1 subdevice 1 value 16000\" events.txt"
check "events: the bridge's playback (1,0) is announced on device 0" \
    sh -c "grep -q \"'PCM Slave Active' device 0 subdevice 0 value 1\" events.txt"
check "amixer reads the last playback's parameters: device 1 subdevice 0 MU_LAW 16000 Hz mono, idle" sh -c '
    amixer -c VoIP cget "iface=PCM,name=PCM Slave Format,device=1" | grep -q ": values=20" &&
    amixer -c VoIP cget "iface=PCM,name=PCM Slave Rate,device=1" | grep -q ": values=16000" &&
    amixer -c VoIP cget "iface=PCM,name=PCM Slave Channels,device=1" | grep -q ": values=1" &&
    amixer -c VoIP cget "iface=PCM,name=PCM Slave Active,device=1" | grep -q ": values=off"'

# --- ends of different formats: START fails with EIO (aloop's rule) -----------------
$PS eio >eio.txt 2>&1; r=$?
grep -E '^(PASS|FAIL)' eio.txt | sed 's/^/  /'
[ $r = 0 ] && pass "ends of different formats: START -> EIO both ways, equal formats start" || fail "ends of different formats (see above)"

# --- suspend and resume through /sys/power/pm_test (devices level) ----------------
if ! [ -w /sys/power/pm_test ] || ! grep -q freeze /sys/power/state; then
    fail "no /sys/power/pm_test or no freeze state: the kernel lacks PM_DEBUG/SUSPEND"
elif ! shares_survive_suspend; then
    fail "suspend/resume not tested: the guest's 9p shares would hang after a suspend ($shares_why); boot it with tests/qemu/run-guest.sh --pm"
else
    $PS suspend 0,2 p run >susp-run.txt 2>&1 &
    s1=$!
    $PS suspend 1,3 c pause >susp-pause.txt 2>&1 &
    s2=$!
    $PS suspend 0,3 c run >susp-capt.txt 2>&1 &
    s3=$!
    wait_for 60 sh -c 'grep -q READY susp-run.txt && grep -q READY susp-pause.txt && grep -q READY susp-capt.txt'
    grep -E "running|paused" /proc/asound/VoIP/cable4 /proc/asound/VoIP/cable7 >susp-cables.txt
    echo devices >/sys/power/pm_test
    t0=$(ms)
    if echo freeze >/sys/power/state; then
        pass "system suspend (pm_test devices) completed in $(( ($(ms) - t0) / 1000 )) s"
    else
        fail "echo freeze > /sys/power/state failed"
    fi
    echo none >/sys/power/pm_test
    wait $s1; r1=$?
    wait $s2; r2=$?
    wait $s3; r3=$?
    for f in susp-run.txt susp-pause.txt susp-capt.txt; do grep -E '^(PASS|FAIL)' $f | sed "s/^/  $f: /"; done
    [ $r1 = 0 ] && pass "suspend: a running playback got ESTRPIPE and resumed (SNDRV_PCM_IOCTL_RESUME), streaming on" || fail "suspend of a running playback (see above)"
    [ $r3 = 0 ] && pass "suspend: a running capture got ESTRPIPE and resumed" || fail "suspend of a running capture (see above)"
    [ $r2 = 0 ] && pass "suspend: a paused capture stayed paused through the suspend and released" || fail "suspend of a paused stream (see above)"
    check "the kernel log shows the PM core suspended and resumed the devices" sh -c 'dmesg | grep -q "PM: suspend exit"'
fi

# --- stress: parallel cycles over every substream of both devices --------------
rmmod snd_voip
check "modprobe snd-voip pcm_substreams=8 (for the stress)" modprobe snd-voip pcm_substreams=8
t0=$(ms)
$PS stress "$stress_cycles" 4 >stress.txt 2>&1; r=$?
sed 's/^/  /' stress.txt
[ $r = 0 ] && pass "stress: $stress_cycles open/hw_params/prepare/trigger/close cycles from 4 processes in $(( ($(ms) - t0) / 1000 )) s" \
    || fail "stress program failed (status $r)"
$AT gen --format S16_LE --rate 8000 --channels 1 --freq 1000 --seconds 1 s8k.raw
arecord -q -D hw:VoIP,1,0 -t raw -f S16_LE -r 8000 -c 1 after.raw 2>after.log &
rec=$!
wait_proc "capture: running" /proc/asound/VoIP/cable0
aplay -q -D hw:VoIP,0,0 -t raw -f S16_LE -r 8000 -c 1 s8k.raw
kill -INT $rec 2>/dev/null; wait $rec 2>/dev/null
check "the card still works after the stress: 1 s of 1 kHz through cable 0" \
    $AT analyze --format S16_LE --rate 8000 --channels 1 --freq 1000 --seconds 1 --min-dbfs -7 after.raw
rmmod snd_voip

# --- load/unload cycles in-process (finit_module/delete_module) -----------------
modprobe snd-voip && rmmod snd_voip   # the ALSA core modules stay loaded
t0=$(ms)
$PS modcycle "/lib/modules/$(uname -r)/extra/snd-voip.ko" "$mod_cycles" >mod.txt 2>&1; r=$?
sed 's/^/  /' mod.txt
[ $r = 0 ] && pass "$mod_cycles load/unload cycles ($(( ($(ms) - t0) / 1000 )) s)" || fail "load/unload cycles"

if [ -n "${robust_alone:-}" ]; then
    check_kmemleak
    check_dmesg
    summary
fi
