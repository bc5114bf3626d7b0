#!/usr/bin/env bash
# Cargo in the one profile the tests use (SND_VOIP_PROFILE, default `ci`),
# in the target directory outside the clone (SND_VOIP_TARGET), holding that
# directory's lock so two checkouts sharing it never pick up each other's
# binaries (scripts/env.sh says why).
#
#   scripts/cargo-ci.sh bins       build the workspace's binaries and copy
#                                  voipbridge, audiotest, pcmcheck, rtos-sim
#                                  into SND_VOIP_BIN (printed)
#   scripts/cargo-ci.sh test [ARGS...]    cargo test --workspace in the profile
#   scripts/cargo-ci.sh clippy [ARGS...]  cargo clippy --workspace --all-targets
#   scripts/cargo-ci.sh clippy-lean [ARGS...]  the same for voipbridge built
#                                  without its optional features (tls, srtp,
#                                  aec), so that build keeps compiling clean
#   scripts/cargo-ci.sh print-bin | print-target   print SND_VOIP_BIN / SND_VOIP_TARGET
set -euo pipefail
. "$(dirname "$0")/env.sh"
CARGO=${CARGO:-cargo}
cmd=${1:-}; shift || true
# cargo_ SUBCOMMAND ARGS...: the profile and target options go before ARGS
# (which may hold `-- test-binary-args`).
cargo_() { (cd "$SND_VOIP_ROOT" && "$CARGO" "$1" --locked --profile "$SND_VOIP_PROFILE" --target-dir "$SND_VOIP_TARGET" "${@:2}"); }
BINS=(voipbridge audiotest pcmcheck rtos-sim)
bins() {
    cargo_ build --workspace --bins
    mkdir -p "$SND_VOIP_BIN"
    local b
    for b in "${BINS[@]}"; do
        [ -x "$SND_VOIP_TARGET/$SND_VOIP_PROFILE/$b" ] || die "cargo-ci: $b was not built"
        cp -p "$SND_VOIP_TARGET/$SND_VOIP_PROFILE/$b" "$SND_VOIP_BIN/.$b.tmp"
        mv -f "$SND_VOIP_BIN/.$b.tmp" "$SND_VOIP_BIN/$b"
    done
}
case "$cmd" in
    bins) with_lock "$SND_VOIP_TARGET" bins; echo "$SND_VOIP_BIN" ;;
    test) with_lock "$SND_VOIP_TARGET" cargo_ test --workspace "$@" ;;
    clippy) with_lock "$SND_VOIP_TARGET" cargo_ clippy --workspace --all-targets "$@" ;;
    clippy-lean) with_lock "$SND_VOIP_TARGET" cargo_ clippy -p voipbridge --no-default-features --all-targets "$@" ;;
    print-bin) echo "$SND_VOIP_BIN" ;;
    print-target) echo "$SND_VOIP_TARGET" ;;
    *) die "usage: $0 bins | test [ARGS] | clippy [ARGS] | clippy-lean [ARGS] | print-bin | print-target" ;;
esac
