#!/usr/bin/env bash
# `make demo`: boot the emulated board (reference kernel + snd-voip) in qemu
# and run the call demo inside it; then draw the spectra of both recordings.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${OUT:-$root/target/demo}
rm -rf "$out"; mkdir -p "$out"
set +e
"$root/tests/qemu/run-guest.sh" --timeout 600 --out "$out" "$root/tests/demo/guest.sh" | tee "$out/console.log" | sed -n '/@@SND_VOIP_BEGIN/,/@@SND_VOIP_END/p' | grep -v "^@@"
rc=${PIPESTATUS[0]}
set -e
if /usr/bin/python3 "$root/tests/demo/plot.py" "$out/far-heard.wav" "$out/app-heard.wav" "$out/spectrum.png"; then
    echo "spectrum plot: $out/spectrum.png"
fi
echo "recordings and logs: $out"
exit "$rc"
