#!/usr/bin/env bash
# Configure and build the reference kernel for $BOARD into a cache directory
# outside the repository, keyed by kernel version, config fragments and toolchain.
# A finished build is reused as is.
#
#   scripts/kernel.sh              build (or reuse) and print nothing but progress
#   scripts/kernel.sh --print-kdir print the build directory (O=) of the reference tree
#   scripts/kernel.sh --print-kernel print the bootable image in it
set -euo pipefail
. "$(dirname "$0")/env.sh"

[ -f "$KSRC/Makefile" ] || die "kernel source not found at $KSRC: run 'make setup' first"
[ -x "$KRUSTC" ] || die "$KRUSTC not found: run 'make setup' (Debian's rustc-web)"

frags=("$SND_VOIP_ROOT/board-configs/common/base.config")
[ "${SND_VOIP_DEBUG:-1}" = 1 ] && frags+=("$SND_VOIP_ROOT/board-configs/common/debug.config")
frags+=("$SND_VOIP_ROOT/board-configs/$BOARD/kernel.config")
[ -n "${EXTRA_FRAGMENTS:-}" ] && frags+=($EXTRA_FRAGMENTS)
for f in "${frags[@]}"; do [ -f "$f" ] || die "missing config fragment $f"; done

kver=$(make -s -C "$KSRC" kernelversion)
key=$( { echo "$kver $KARCH"; cat "${frags[@]}"; "$KRUSTC" --version; "$KBINDGEN" --version 2>&1; clang --version | head -1; } | sha256sum | cut -c1-12)
O="$SND_VOIP_CACHE/build-$BOARD-$kver-$key"

case "${1:-}" in
    --print-kdir) echo "$O"; exit 0 ;;
    --print-kernel) echo "$O/$KIMAGE"; exit 0 ;;
    "") ;;
    *) die "unknown argument $1" ;;
esac

if [ -f "$O/.snd-voip-built" ]; then
    echo "kernel: reusing $O" >&2
    exit 0
fi

echo "kernel: building $kver for $BOARD in $O" >&2
mkdir -p "$O"
km() { make -C "$KSRC" O="$O" "${KMAKE_FLAGS[@]}" "$@"; }
km -s tinyconfig
"$KSRC/scripts/kconfig/merge_config.sh" -m -O "$O" "$O/.config" "${frags[@]}" >"$O/merge.log"
km -s olddefconfig
# merge_config only warns when Kconfig drops a value: check every request made it.
bad=0
for f in "${frags[@]}"; do
    while IFS= read -r line; do
        case "$line" in
            CONFIG_*=*) grep -qxF "$line" "$O/.config" || { echo "kernel config: '$line' from $(basename "$f") did not take" >&2; bad=1; } ;;
            "# CONFIG_"*" is not set") opt=${line#\# }; opt=${opt%% *}
                grep -q "^$opt=" "$O/.config" && { echo "kernel config: $opt should be unset" >&2; bad=1; } ;;
        esac
    done <"$f"
done
[ "$bad" = 0 ] || die "kernel config fragments did not apply (see above)"
km -j"$(nproc)" $KTARGETS
touch "$O/.snd-voip-built"
echo "kernel: built $O/$KIMAGE" >&2
