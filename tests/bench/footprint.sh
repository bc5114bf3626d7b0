#!/usr/bin/env bash
# make bench, footprint: the stripped arm64 voipbridge as a board ships it
# (scripts/xbuild-arm64.sh, release-embedded profile: fat LTO, one codegen
# unit, opt-level "s", panic = abort, stripped), the crates in its arm64
# dependency tree, and beside them what Debian's baresip takes (its binary,
# libre, and the modules a G.711 call on a sound card or files needs). The
# agents' resident memory is measured by tests/bench/calls.sh (host).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/scripts/env.sh"
echo "== footprint"
bin=$("$root/scripts/xbuild-arm64.sh" -j "${XBUILD_JOBS:-2}" 2>/dev/null) || { echo "bench: the arm64 cross build failed (run scripts/xbuild-arm64.sh)"; exit 1; }
size=$(stat -c %s "$bin")
echo "voipbridge, arm64 release-embedded, stripped: $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.2f MiB", s / 1048576 }')); $(file -b "$bin" | cut -d, -f1-2)"
echo "  segments: $(llvm-size "$bin" 2>/dev/null | awk 'NR == 2 { printf "text %d, data %d, bss %d bytes", $1, $2, $3 }')"
echo "  shared libraries: $(readelf -d "$bin" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')"
# What the optional features cost (README "Cargo features"): voipbridge
# built with fewer, same profile. FOOTPRINT_FEATURES lists the builds
# (comma lists or "none"; "" skips them: each is a cold LTO build, minutes).
for f in ${FOOTPRINT_FEATURES-none tls srtp aec}; do
    fb=$("$root/scripts/xbuild-arm64.sh" -j "${XBUILD_JOBS:-2}" --features "$f" 2>/dev/null) || { echo "bench: the arm64 cross build with features $f failed"; exit 1; }
    fs=$(stat -c %s "$fb")
    echo "  with features \"$f\" only: $fs bytes ($(awk -v s="$fs" -v t="$size" 'BEGIN { printf "%.2f MiB, %+.2f MiB", s / 1048576, (s - t) / 1048576 }'))"
done
crates=$(cd "$root" && cargo tree --locked --offline -q -p voipbridge --target aarch64-unknown-linux-gnu -e normal --prefix none 2>/dev/null | sed 's/ (\*)//' | sort -u | wc -l)
echo "crates in voipbridge's arm64 dependency tree (normal, itself included): $crates"
if command -v baresip >/dev/null; then
    bs=$(stat -c %s "$(command -v baresip)")
    libre=$(ldd "$(command -v baresip)" | awk '/libre\.so|libbaresip/ { print $3 }' | xargs -r stat -L -c %s | awk '{ s += $1 } END { print s + 0 }')
    mods=0
    for m in g711 alsa account menu aufile sndfile stdio; do
        [ -f "/usr/lib/baresip/modules/$m.so" ] && mods=$((mods + $(stat -c %s "/usr/lib/baresip/modules/$m.so")))
    done
    echo "baresip (Debian $(dpkg-query -W -f '${Version}' baresip-core 2>/dev/null), x86_64): binary $bs bytes, libre/libbaresip $libre bytes, modules g711 alsa account menu aufile sndfile stdio $mods bytes; total $((bs + libre + mods)) bytes (issue 16: baresip installs in 1.1 MB on OpenWrt ARMv7)"
fi
