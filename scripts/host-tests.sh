#!/usr/bin/env bash
# Run every host integration test (tests/host/*.sh, or the ones named), each
# timed; the binaries are the tests' profile's (SND_VOIP_BIN, built by
# `make bridge`). Every test runs; the status is 1 if any failed. Ends with
# one line per test: status and seconds.
#
# usage: scripts/host-tests.sh [tests/host/NAME.sh ...]
set -uo pipefail
. "$(dirname "$0")/env.sh"
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=("$SND_VOIP_ROOT"/tests/host/*.sh)
for b in voipbridge audiotest; do
    [ -x "$SND_VOIP_BIN/$b" ] || die "host-tests: $SND_VOIP_BIN/$b missing: run 'make bridge'"
done
summary=() failed=0
for t in "${tests[@]}"; do
    [ -e "$t" ] || continue
    echo "== $t"
    t0=$SECONDS
    if bash "$t"; then r=PASS; else r=FAIL; failed=$((failed + 1)); fi
    summary+=("$(printf '%-4s %4d s  %s' "$r" $((SECONDS - t0)) "$(basename "$t")")")
done
echo "== host tests:"
printf '   %s\n' "${summary[@]}"
[ "$failed" = 0 ]
