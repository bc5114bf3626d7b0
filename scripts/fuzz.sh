#!/usr/bin/env bash
# `make fuzz`: build voipbridge's cargo-fuzz targets (voipbridge/fuzz, a
# workspace of its own with its own Cargo.lock) and run each for
# FUZZ_SECONDS from the committed seeds plus the corpus kept from earlier
# runs. cargo-fuzz runs on the stable toolchain with RUSTC_BOOTSTRAP=1 (for
# -Zsanitizer=address).
#
# The build goes to a target directory outside the clone, keyed by the
# toolchain, under its lock; the fuzzers are copied into SND_VOIP_BIN/fuzz
# and run from there (what `cargo fuzz run` does, without rebuilding).
# Cargo.lock is checked first (cargo-fuzz 0.13 has no --locked): a lock
# file that would change fails the run instead of being rewritten.
# The growing corpus: $SND_VOIP_CACHE/fuzz-corpus/TARGET; crashes:
# voipbridge/fuzz/artifacts/TARGET/ (replay: README, "Fuzzing").
#
# usage: FUZZ_SECONDS=N scripts/fuzz.sh [TARGET...]   (default: sip_message sdp sdes)
set -euo pipefail
. "$(dirname "$0")/env.sh"
secs=${FUZZ_SECONDS:-60}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(sip_message sdp sdes)
fz=$SND_VOIP_ROOT/voipbridge/fuzz
cargo fuzz --version >/dev/null 2>&1 || die "fuzz: cargo-fuzz not installed: run 'make setup'"
T=$SND_VOIP_CACHE/cargo-fuzz-$( { rustc -vV; cargo -V; cargo fuzz --version; } | snd_voip_key)
export RUSTC_BOOTSTRAP=1
build() {
    cargo metadata --locked --format-version 1 --manifest-path "$fz/Cargo.toml" >/dev/null \
        || die "fuzz: voipbridge/fuzz/Cargo.lock is out of date (cargo metadata --locked failed)"
    local t0=$SECONDS t b
    (cd "$SND_VOIP_ROOT/voipbridge" && cargo fuzz build --target-dir "$T") || die "fuzz: cargo fuzz build failed"
    mkdir -p "$SND_VOIP_BIN/fuzz"
    for t in "${targets[@]}"; do
        b=$T/x86_64-unknown-linux-gnu/release/$t
        [ -x "$b" ] || die "fuzz: $b was not built"
        cp -p "$b" "$SND_VOIP_BIN/fuzz/.$t.tmp" && mv -f "$SND_VOIP_BIN/fuzz/.$t.tmp" "$SND_VOIP_BIN/fuzz/$t"
    done
    echo "fuzz: build (or reuse) $((SECONDS - t0)) s" >&2
}
with_lock "$T" build
git -C "$SND_VOIP_ROOT" diff --quiet -- voipbridge/fuzz/Cargo.lock 2>/dev/null \
    || die "fuzz: the build changed voipbridge/fuzz/Cargo.lock"
for t in "${targets[@]}"; do
    corpus=$SND_VOIP_CACHE/fuzz-corpus/$t
    art=$fz/artifacts/$t
    mkdir -p "$corpus" "$art"
    echo "== fuzz $t ($secs s; corpus $corpus: $(find "$corpus" -type f | wc -l) inputs)"
    log=$SND_VOIP_CACHE/fuzz-corpus/$t.log
    rc=0
    "$SND_VOIP_BIN/fuzz/$t" -artifact_prefix="$art/" -max_total_time="$secs" -max_len=8192 \
        -print_final_stats=1 "$corpus" "$fz/seeds/$t" >"$log" 2>&1 || rc=$?
    if [ "$rc" != 0 ]; then
        tail -n 60 "$log"
        die "fuzz: $t failed (exit $rc); the crashing input is in $art (full log: $log)"
    fi
    grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|Done [0-9]+ runs)" "$log" | sed 's/^/   /'
done
