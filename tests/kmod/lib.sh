# Helpers for the guest-side card tests (sourced by scripts run with
# tests/qemu/run-guest.sh). Each check prints "PASS: name" or "FAIL: name: why".
passed=0 failed=0
if [ -z "${AUDIOTEST:-}" ]; then
    AUDIOTEST=$SND_VOIP_ROOT/target/release/audiotest
    [ -x "$AUDIOTEST" ] || AUDIOTEST=$SND_VOIP_ROOT/target/debug/audiotest
fi
AT=$AUDIOTEST
pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
check() { # check NAME CMD... : pass when CMD succeeds
    name=$1; shift
    if out=$("$@" 2>&1); then pass "$name"; else fail "$name: $(echo "$out" | grep -v '^ ' | tail -n 6 | tr '\n' ' ')"; return 1; fi
}
summary() {
    echo "$passed passed, $failed failed"
    [ "$failed" = 0 ]
}
# Fails the run on any kernel report from KASAN, lockdep, WARN or BUG.
check_dmesg() {
    if dmesg | grep -E "BUG:|WARNING:|KASAN|possible recursive locking|circular locking|inconsistent lock state|INFO: task|Oops|general protection|refcount_t:|UBSAN" >/tmp/dmesg-bad 2>&1; then
        fail "kernel log is clean: $(head -n 5 /tmp/dmesg-bad | tr '\n' ' ')"
        dmesg | tail -n 80
    else
        pass "kernel log is clean (no KASAN, lockdep, WARN or BUG)"
    fi
}
check_kmemleak() {
    [ -w /sys/kernel/debug/kmemleak ] || { echo "SKIP: kmemleak not available"; return; }
    echo scan >/sys/kernel/debug/kmemleak; sleep 6; echo scan >/sys/kernel/debug/kmemleak
    if grep -q "snd_voip\|snd-voip\|snd_pcm\|snd_card" /sys/kernel/debug/kmemleak; then
        fail "kmemleak: leaks in sound code: $(head -n 20 /sys/kernel/debug/kmemleak | tr '\n' ' ')"
    else
        pass "kmemleak: no leak in sound code"
    fi
}
# wait_proc TEXT FILE...: wait (up to 15 s) until every FILE contains TEXT.
# (POSIX sh has no local variables: every name here starts with wp_.)
wait_proc() {
    wp_text=$1; shift
    wp_i=0
    while [ $wp_i -lt 150 ]; do
        wp_all=1
        for wp_f in "$@"; do grep -q "$wp_text" "$wp_f" 2>/dev/null || wp_all=0; done
        [ $wp_all = 1 ] && return 0
        sleep 0.1; wp_i=$((wp_i + 1))
    done
    echo "wait_proc: '$wp_text' not seen in $*" >&2
    return 1
}
