#!/usr/bin/env bash
# Build snd-voip.ko for the emulated arm64 board (BOARD=qemu-arm64 kernel)
# and print its path: scripts/kmod.sh for the arm64 tree.
#
# usage: scripts/kmod-arm64.sh [KDIR]   (default: the arm64 reference tree
#                                        of SND_VOIP_KERNEL, debug unless set)
# Needs: BOARD=qemu-arm64 make kernel.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export BOARD=qemu-arm64
kdir=${1:-$("$root/scripts/kernel.sh" --print-kdir)}
[ -f "$kdir/.config" ] && grep -q '^CONFIG_ARM64=y' "$kdir/.config" \
    || { echo "kmod-arm64: $kdir is not a configured arm64 tree: run 'BOARD=qemu-arm64 make kernel'" >&2; exit 2; }
exec "$root/scripts/kmod.sh" "$kdir"
