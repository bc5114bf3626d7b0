#!/usr/bin/env bash
# `make test` and `make test-long`: run every suite of a tier, each timed,
# and end with a table of wall times (setup, builds, suites) and the total,
# printed whether or not a suite failed. Every suite runs even after
# another failed (like make -k), so one run shows every failure; the exit
# status is 1 if any failed.
#
# The builds that take minutes of CPU (the three kernels, the arm64 cross
# build and modules) run in the background, niced, while the foreground
# runs what is not CPU-bound or needs none of them (cargo build and tests,
# lint, the host tests, whose calls run in real time, fuzzing); a suite
# that needs a kernel waits for it through the kernel's build lock.
# SND_VOIP_OVERLAP says how far the two overlap:
#   all (default)   a qemu suite starts as soon as its kernel is there
#                   (the x86_64 suites first, while the arm64 kernel and the
#                   cross build go on at nice 19: a guest's emulated CPUs
#                   take what they need, the compilers get the rest);
#   host            the qemu suites start once every background build is
#                   done, so no guest ever shares the CPU with a compiler;
#   none            builds first, then every suite (for measuring).
# On a cached machine the builds take seconds and the three are the same;
# on a fresh one the builds take ~30 minutes of both cores, and only
# overlapping them with the suites keeps make test inside its budget.
#
# usage: scripts/run-suites.sh [--tier test|long] [SUITE...]
#   SUITE...  run only these (names as in the table; builds still run)
# Output: each suite's log in $SND_VOIP_TEST_OUT/logs (default
# target/test-out/logs), the table in $SND_VOIP_TEST_OUT/times.txt.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
tier=test
only=()
while [ $# -gt 0 ]; do
    case "$1" in
        --tier) tier=$2; shift 2 ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        -*) echo "run-suites: unknown option $1" >&2; exit 2 ;;
        *) only+=("$1"); shift ;;
    esac
done
overlap=${SND_VOIP_OVERLAP:-all}
case "$overlap" in host|all|none) ;; *) echo "run-suites: SND_VOIP_OVERLAP=$overlap: want host, all or none" >&2; exit 2 ;; esac

# Suites: NAME:MAKE_TARGET. "host" suites need no kernel; "qemu" suites boot one.
case "$tier" in
    test)
        # Fuzzing (make test-fuzz, 30 s a target; make fuzz-long) is the
        # long tier's: its ASan build took ~5 minutes of a fresh run's
        # CPU, and cargo test runs every seed and its mutations
        # (tests/fuzz_seeds.rs) anyway.
        host_suites=(lint dtbs-check kconfig-check test-host)
        # (in the order the background builds finish their kernels). On the
        # arm64 board: the RTOS suites (test-rtos) and the board demo; the
        # card suite there (test-kmod-arm64, 7.5 min, or only its matrix,
        # make test-kmod-arm64-matrix, 3.5 min) is the long tier's since
        # 2026-12-06: a fresh make test took 60 minutes (the x86 matrix
        # covers the same driver code in make test).
        qemu_suites=(test-kmod test-intree test-linphone demo-x86 test-rtos demo-board)
        # linphone and both demos on the debug kernels, like every other
        # suite here: a correctness run (the board demo is the RTOS FIFO's
        # only run inside a real call), and one kernel per architecture to
        # build on a fresh machine (the x86_64 production kernel's ~15
        # minutes of CPU beside the suites took a fresh make test to 60
        # minutes, 2026-12-06). `make demo` and `make bench` boot the
        # production kernels and show (x86_64: judge) latency.
        export LINPHONE_KERNEL=debug DEMO_X86_KERNEL=debug DEMO_BOARD_KERNEL=debug
        # Background builds, in the order the qemu suites need them: the
        # module for the two kernels this tier boots (kmods-test), not
        # `make kmods`, which also builds the x86_64 production kernel
        # for its module (a fresh run of 2026-12-06 built it during
        # test-rtos, whose delay check then failed twice on the loaded
        # host). `make demo` builds the module on that kernel, warnings
        # and objtool failing it, as the long tier's kmods does.
        bg_builds=(kernel kernel-arm64 kmods-test xbuild-arm64)
        ;;
    long)
        host_suites=(fuzz-long test-host-long template-build)
        qemu_suites=(test-kmod-long test-kmod-arm64)
        bg_builds=(kernel kernel-arm64 kmods xbuild-arm64)
        ;;
    *) echo "run-suites: unknown tier $tier (test or long)" >&2; exit 2 ;;
esac

out=${SND_VOIP_TEST_OUT:-$root/target/test-out}
mkdir -p "$out/logs"
times=$out/times.txt
rm -f "$out/bg.hold"
: >"$times"
export SND_VOIP_SETUP_DONE=1  # sub-makes skip `make setup`: it runs once, first
t_start=$SECONDS
declare -A status=() secs=()
order=()
failed=0 passed=0

wanted() {
    [ ${#only[@]} -eq 0 ] && return 0
    local s
    for s in "${only[@]}"; do [ "$s" = "$1" ] && return 0; done
    return 1
}
# run NAME CMD...: one timed step, its output to the terminal and its log.
run() {
    local name=$1 t0=$SECONDS rc
    shift
    echo "==== $name: $* ($(date +%T))"
    "$@" 2>&1 | tee "$out/logs/$name.log"
    rc=${PIPESTATUS[0]}
    record "$name" "$rc" $((SECONDS - t0))
    echo "==== $name: $([ "$rc" = 0 ] && echo PASS || echo "FAIL (exit $rc)") in $((SECONDS - t0)) s"
    return "$rc"
}
record() { # NAME RC SECONDS (RC "-": a wait, not a step)
    order+=("$1"); secs[$1]=$3
    if [ "$2" = - ]; then status[$1]=""
    elif [ "$2" = 0 ]; then status[$1]=PASS; passed=$((passed + 1))
    else status[$1]=FAIL; failed=$((failed + 1)); fi
    printf '%-18s %-4s %5d s\n' "$1" "${status[$1]}" "$3" >>"$times"
}
mk() { make --no-print-directory -C "$root" "$@"; }

# setup.sh itself, not `make setup`: SND_VOIP_SETUP_DONE (exported above for
# the sub-makes) would make the target skip it, and a fresh machine would
# then have no qemu, kamailio or kernel sources.
run setup "$root/scripts/setup.sh" || { echo "run-suites: setup failed; nothing else can run" >&2; }

# The background builder: one step after another, niced; each step's time
# and status in $out/bg.times (read into the table at the end).
# It runs as a job of its own (set -m: its own process group, still this
# session, so nice applies against the suites), which lets the suites below
# hold it and lets an interrupted run end it.
bg_pid=""
if [ "${status[setup]}" = PASS ]; then
    set -m
    (
        for b in "${bg_builds[@]}"; do
            echo "$b" >"$out/bg.current"
            # Held (bg_hold): the cross build waits for the suite to end
            # (bg.current is written first: a hold that comes after this
            # check finds xbuild-arm64 there and stops the step instead).
            if [ "$b" = xbuild-arm64 ]; then
                while [ -e "$out/bg.hold" ]; do sleep 2; done
            fi
            t0=$SECONDS
            nice -n 19 make --no-print-directory -C "$root" "$b" >"$out/logs/build-$b.log" 2>&1
            echo "build-$b $? $((SECONDS - t0))" >>"$out/bg.times"
        done
        rm -f "$out/bg.current"
    ) </dev/null &
    bg_pid=$!
    set +m
    trap '[ -z "$bg_pid" ] || kill -CONT -- -"$bg_pid" 2>/dev/null; [ -z "$bg_pid" ] || kill -TERM -- -"$bg_pid" 2>/dev/null' EXIT
    : >"$out/bg.times"
    echo "==== background builds started ($(date +%T)): ${bg_builds[*]} (logs in $out/logs/build-*.log)"
fi
# bg_hold SUITE / bg_release: the arm64 suites judge real-time audio on an
# emulated board that a compiler beside it starves even at nice 19
# (measured on a fresh machine: test-rtos's own capture overran and the
# simulator's speaker underran while the arm64 cross build ran). The cross
# build is the one background step no such suite needs, so while one runs
# that step is stopped (SIGSTOP to its group), and continued after.
# (test-kmod-arm64 and -matrix need the cross build's test programs: their
# make prerequisite waits for the step to finish, so holding the step for
# them would deadlock; the step is over before their guest boots.)
# A cross build not yet started when the suite starts (its kernel still
# building: a fresh machine) does not start until the suite ends: the
# builder waits while $out/bg.hold exists (a fresh run of 2026-12-06 had
# test-rtos's speaker underrun once with the cross build started beside it).
bg_held=""
bg_hold() {
    case "$1" in test-rtos) ;; *) return 0 ;; esac
    [ -n "$bg_pid" ] || return 0
    : >"$out/bg.hold"
    bg_held=file
    [ "$(cat "$out/bg.current" 2>/dev/null)" = xbuild-arm64 ] || return 0
    kill -STOP -- -"$bg_pid" 2>/dev/null || return 0
    bg_held=stopped
    echo "==== background build xbuild-arm64 held while $1 runs ($(date +%T))"
}
bg_release() {
    [ -n "$bg_held" ] || return 0
    rm -f "$out/bg.hold"
    if [ "$bg_held" = stopped ]; then
        kill -CONT -- -"$bg_pid" 2>/dev/null
        echo "==== background build xbuild-arm64 continues ($(date +%T))"
    fi
    bg_held=""
}
bg_wait() {
    [ -n "$bg_pid" ] || return 0
    local t0=$SECONDS
    echo "==== waiting for the background builds ($(date +%T))"
    wait "$bg_pid"
    bg_pid=""
    local name rc s
    while read -r name rc s; do record "$name" "$rc" "$s"; done <"$out/bg.times"
    record "(waiting for builds)" - $((SECONDS - t0))
}
[ "$overlap" = none ] && bg_wait

if [ "${status[setup]}" = PASS ]; then
    run bridge mk bridge
    for s in "${host_suites[@]}"; do wanted "$s" && run "$s" mk "$s"; done
    [ "$overlap" = host ] && bg_wait
    for s in "${qemu_suites[@]}"; do
        wanted "$s" || continue
        bg_hold "$s"
        run "$s" mk "$s"
        bg_release
    done
fi
bg_wait

total=$((SECONDS - t_start))
# What failed, at the end where a truncated CI log still shows it: each
# failing step's FAIL lines (and panics), from its log.
if [ "$failed" != 0 ]; then
    echo
    echo "================ snd-voip: make $tier, what failed ================"
    for n in "${order[@]}"; do
        [ "${status[$n]}" = FAIL ] || continue
        echo "-- $n ($out/logs/$n.log):"
        # A panic's message is on the line after its "panicked at".
        awk '/^==== /{next} /panicked at/{print; if ((getline l) > 0) print l; next}
             /FAIL|^error(\[|:)|Error [0-9]/' "$out/logs/$n.log" 2>/dev/null |
            tail -n 25 | cut -c1-400 | sed 's/^/   /'
    done
fi
{
    echo
    echo "================ snd-voip: make $tier, wall time per step ================"
    for n in "${order[@]}"; do printf '  %-22s %-4s %6d s  (%d:%02d)\n' "$n" "${status[$n]}" "${secs[$n]}" $((secs[$n] / 60)) $((secs[$n] % 60)); done
    printf '  %-22s %-4s %6d s  (%d:%02d)   overlap=%s, %s, %s\n' total "" "$total" $((total / 60)) $((total % 60)) "$overlap" "$(nproc) CPUs" "$(date +%F)"
    echo "  (background builds overlap the foreground steps: the total is the wall time, not the sum)"
    echo "$passed passed, $failed failed"
} | tee -a "$times"
[ "$failed" = 0 ]
