#!/usr/bin/env bash
# Build snd-voip.ko for a kernel build directory and print its path.
# A 6.12 out-of-tree build writes its objects next to the sources, so the
# sources are mirrored into a cache directory per (kernel build, checkout)
# and built there; Kbuild then rebuilds only what changed on the next run.
# The kernel's compiler (clang or GCC, from its .config) and architecture
# pick the module's make flags, so the module always matches its tree.
#
# usage: scripts/kmod.sh [KDIR]   (default: scripts/kernel.sh --print-kdir,
#                                  i.e. BOARD and SND_VOIP_KERNEL pick it)
# Output: $SND_VOIP_CACHE/kmod-<kernel build dir>-<checkout key>/src/snd-voip.ko
set -euo pipefail
. "$(dirname "$0")/env.sh"
kdir=${1:-$("$SND_VOIP_ROOT/scripts/kernel.sh" --print-kdir)}
[ -f "$kdir/.config" ] && [ -f "$kdir/Module.symvers" ] \
    || die "kmod: $kdir is not a built kernel tree: run 'make kernel' (BOARD=$BOARD SND_VOIP_KERNEL=$SND_VOIP_KERNEL)"
flags=(RUSTC="$KRUSTC" RUSTDOC="$KRUSTDOC" BINDGEN="$KBINDGEN")
if grep -q '^CONFIG_ARM64=y' "$kdir/.config"; then flags+=(ARCH=arm64); else flags+=(ARCH=x86_64); fi
grep -q '^CONFIG_CC_IS_CLANG=y' "$kdir/.config" && flags+=(LLVM=1)
dest=$SND_VOIP_CACHE/kmod-$(basename "$kdir")-$SND_VOIP_CHECKOUT_KEY
build() {
    mkdir -p "$dest"
    rsync -a --delete --exclude='*.o' --exclude='*.ko' --exclude='*.mod' --exclude='*.mod.c' \
        --exclude='.*.cmd' --exclude=modules.order --exclude=Module.symvers --exclude='*_generated.rs' \
        --exclude=.build.log --exclude=target --exclude=tests "$SND_VOIP_ROOT/kmod-snd-voip/" "$dest/src/"
    # Objects stay between runs (Kbuild rebuilds what changed); the sources
    # are the mirror's, so a removed source file also leaves the build.
    if ! make -s -C "$dest/src" KDIR="$kdir" KMAKE_FLAGS="${flags[*]}" >"$dest/build.log" 2>&1; then
        cat "$dest/build.log" >&2
        die "kmod: the module build against $kdir failed"
    fi
    [ -f "$dest/src/snd-voip.ko" ] || die "kmod: no snd-voip.ko after the build"
}
with_lock "$dest" build
echo "$dest/src/snd-voip.ko"
