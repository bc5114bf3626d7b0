#!/usr/bin/env bash
# The kernel rule "driver files contain no unsafe and no raw bindings":
# every raw call lives in kmod-snd-voip/safe/ (and the generated
# bindings.rs). Fails, naming the lines, when a driver file or the module's
# pure logic has `unsafe` or `bindings::`. (`make lint`; the compiler also
# denies unsafe_code in the driver modules, see snd_voip_main.rs.)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/kmod-snd-voip"
files=(snd_voip_main.rs cable.rs card.rs route.rs rtos.rs logic/*.rs)
# Comments may name them ("no `unsafe`"); code may not.
if hits=$(grep -nE '\bunsafe\b|bindings::' "${files[@]}" | grep -vE '^[^:]+:[0-9]+:\s*//'); then
    echo "kmod-safe-check: unsafe or raw bindings outside kmod-snd-voip/safe/:" >&2
    echo "$hits" >&2
    exit 1
fi
# The driver files must not import the raw bindings under another name either.
if hits=$(grep -nE 'use\s+crate::bindings|crate::bindings' "${files[@]}" | grep -vE '^[^:]+:[0-9]+:\s*//'); then
    echo "kmod-safe-check: raw bindings imported outside kmod-snd-voip/safe/:" >&2
    echo "$hits" >&2
    exit 1
fi
echo "kmod-safe-check: ${#files[@]} driver and logic files, no unsafe, no raw bindings"
