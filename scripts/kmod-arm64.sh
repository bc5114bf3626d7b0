#!/usr/bin/env bash
# Build snd-voip.ko for the emulated arm64 board (BOARD=qemu-arm64 kernel)
# and print its path. kmod-snd-voip/ itself holds the x86_64 build, and a
# 6.12 out-of-tree build writes its objects next to the sources, so the
# sources are mirrored into target/arm64/kmod and built there.
#
# usage: scripts/kmod-arm64.sh [KDIR]   (default: the arm64 reference tree)
# Needs: BOARD=qemu-arm64 make kernel.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
kdir=${1:-$(BOARD=qemu-arm64 "$root/scripts/kernel.sh" --print-kdir)}
[ -f "$kdir/.config" ] && grep -q '^CONFIG_ARM64=y' "$kdir/.config" \
    || { echo "kmod-arm64: $kdir is not a configured arm64 tree: run 'BOARD=qemu-arm64 make kernel'" >&2; exit 2; }
dest=$root/target/arm64/kmod
mkdir -p "$dest"
rsync -a --delete --exclude='*.o' --exclude='*.ko' --exclude='*.mod' --exclude='*.mod.c' \
    --exclude='.*.cmd' --exclude=modules.order --exclude=Module.symvers --exclude='*_generated.rs' \
    --exclude=.build.log --exclude=target "$root/kmod-snd-voip/" "$dest/src/"
# Objects stay between runs (Kbuild rebuilds what changed); the sources are
# the mirror's, so a removed source file also leaves the build.
if ! make -s -C "$dest/src" KDIR="$kdir" >"$dest/build.log" 2>&1; then
    cat "$dest/build.log" >&2
    echo "kmod-arm64: the arm64 module build failed" >&2
    exit 1
fi
echo "$dest/src/snd-voip.ko"
