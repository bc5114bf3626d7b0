#!/bin/sh
# Inside the emulated arm64 board (tests/aec/bench-arm64.sh boots it):
# runs the arm64 aec-eval from $GUEST_OUT on the given scenarios for the
# canceller and the no-canceller baseline, into $GUEST_OUT/aec-eval.txt.
#   guest-bench.sh SCENARIO...
cd "$GUEST_OUT" || exit 2
mkdir -p /tmp/bin && cp aec-eval /tmp/bin/ || exit 2
set --  $(for s in "$@"; do echo --scenario "$s"; done)
echo "guest: $(uname -srm), $(grep -c ^processor /proc/cpuinfo) CPUs"
/tmp/bin/aec-eval --backend off --backend aec3 --backend aec3+ns "$@" --json aec-eval.jsonl >aec-eval.txt 2>&1
rc=$?
cat aec-eval.txt
exit $rc
