#!/usr/bin/env bash
# Configure and build the reference kernel for $BOARD and $SND_VOIP_KERNEL
# (debug or prod, see scripts/env.sh) into a cache directory outside the
# repository, keyed by kernel version, config fragments and toolchain.
# A finished build is reused as is. One build directory is built by one
# process at a time (a lock next to it): a second caller waits, then reuses.
#
#   scripts/kernel.sh                 build (or reuse); progress on stderr
#   scripts/kernel.sh --print-kdir    print the build directory (O=)
#   scripts/kernel.sh --print-kernel  print the bootable image in it
#   scripts/kernel.sh --print-frags   print the config fragments, one a line
#
# Environment: BOARD (qemu-x86_64, qemu-arm64), SND_VOIP_KERNEL (debug,
# prod), KCC (clang, gcc), EXTRA_FRAGMENTS (more fragments, part of the key).
set -euo pipefail
. "$(dirname "$0")/env.sh"

frags=("$SND_VOIP_ROOT/board-configs/common/base.config")
[ "$SND_VOIP_KERNEL" = debug ] && frags+=("$SND_VOIP_ROOT/board-configs/common/debug.config")
frags+=("$SND_VOIP_ROOT/board-configs/$BOARD/kernel.config")
[ "$SND_VOIP_KERNEL" = prod ] && frags+=("$SND_VOIP_ROOT/board-configs/common/prod.config")
[ -n "${EXTRA_FRAGMENTS:-}" ] && frags+=($EXTRA_FRAGMENTS)

case "${1:-}" in
    --print-frags) printf '%s\n' "${frags[@]}"; exit 0 ;;
esac
[ -f "$KSRC/Makefile" ] || die "kernel source not found at $KSRC: run 'make setup' first"
[ -x "$KRUSTC" ] || die "$KRUSTC not found: run 'make setup' (Debian's rustc-web)"
for f in "${frags[@]}"; do [ -f "$f" ] || die "missing config fragment $f"; done

kver=$(make -s -C "$KSRC" kernelversion)
if [ "$KCC" = gcc ]; then ccver=$(gcc --version | head -1); else ccver=$(clang --version | head -1); fi
key=$( { echo "$kver $KARCH"; cat "${frags[@]}"; "$KRUSTC" --version; "$KBINDGEN" --version 2>&1; echo "$ccver"; } | sha256sum | cut -c1-12)
# (the debug variant keeps the directory name it always had)
case "$SND_VOIP_KERNEL" in
    debug) O="$SND_VOIP_CACHE/build-$BOARD-$kver-$key" ;;
    *) O="$SND_VOIP_CACHE/build-$BOARD-$SND_VOIP_KERNEL-$kver-$key" ;;
esac

case "${1:-}" in
    --print-kdir) echo "$O"; exit 0 ;;
    --print-kernel) echo "$O/$KIMAGE"; exit 0 ;;
    "") ;;
    *) die "unknown argument $1" ;;
esac

build() {
    if [ -f "$O/.snd-voip-built" ]; then
        echo "kernel: reusing $O" >&2
        return 0
    fi
    local t0=$SECONDS
    echo "kernel: building $kver ($SND_VOIP_KERNEL, $KCC) for $BOARD in $O" >&2
    mkdir -p "$O"
    km() { make -C "$KSRC" O="$O" "${KMAKE_FLAGS[@]}" "$@"; }
    km -s tinyconfig
    "$KSRC/scripts/kconfig/merge_config.sh" -m -O "$O" "$O/.config" "${frags[@]}" >"$O/merge.log"
    km -s olddefconfig
    # merge_config only warns when Kconfig drops a value: check every request made it.
    "$SND_VOIP_ROOT/scripts/config-check.sh" "$O/.config" "${frags[@]}" \
        || die "kernel config fragments did not apply (see above)"
    km -j"$(nproc)" $KTARGETS
    touch "$O/.snd-voip-built"
    echo "kernel: built $O/$KIMAGE in $((SECONDS - t0)) s" >&2
    echo "$((SECONDS - t0))" >"$O/.snd-voip-build-seconds"
}
with_lock "$O" build
