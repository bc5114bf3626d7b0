#!/usr/bin/env bash
# Build tests/pcmstress/pcmstress.c and print the binary's path.
#
#   tests/pcmstress/build.sh [x86_64|arm64] [OUT]
#
# OUT defaults to the binaries the guests get as $SND_VOIP_BIN:
# $SND_VOIP_BIN/pcmstress (x86_64) and $SND_VOIP_BIN-arm64/pcmstress (arm64,
# beside scripts/xbuild-arm64.sh's binaries).
#
# x86_64 (default): the host's cc and glibc (the x86_64 guest runs the
# host's root filesystem). arm64: clang + lld with the kernel's nolibc and
# the arm64 tree's UAPI headers (installed once into target/arm64/uapi), a
# static binary that needs nothing from the board's userspace.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
SND_VOIP_ROOT=$root . "$root/scripts/env.sh"
arch=${1:-x86_64}
case "$arch" in
    x86_64) out=${2:-$SND_VOIP_BIN/pcmstress} ;;
    arm64) out=${2:-$SND_VOIP_BIN-arm64/pcmstress} ;;
    *) echo "pcmstress/build: unknown arch $arch" >&2; exit 2 ;;
esac
mkdir -p "$(dirname "$out")"
src=$here/pcmstress.c
[ "$out" -nt "$src" ] && [ "$out" -nt "$0" ] && { echo "$out"; exit 0; }
case "$arch" in
x86_64)
    cc -std=gnu11 -O2 -Wall -Wextra -Wno-unused-parameter -Werror -o "$out.tmp" "$src" >&2
    ;;
arm64)
    ksrc=${KSRC:-$SND_VOIP_CACHE/linux-source-6.12}
    [ -d "$ksrc/tools/include/nolibc" ] || { echo "pcmstress/build: no kernel tree with tools/include/nolibc (run 'make setup')" >&2; exit 2; }
    hdr=$SND_VOIP_TARGET/arm64-uapi
    if [ ! -f "$hdr/.done" ]; then
        rm -rf "$hdr" "$hdr.build"
        make -s -C "$ksrc" ARCH=arm64 LLVM=1 O="$hdr.build" headers_install INSTALL_HDR_PATH="$hdr" >&2
        rm -rf "$hdr.build"
        touch "$hdr/.done"
    fi
    clang --target=aarch64-linux-gnu -fuse-ld=lld -nostdlib -nostdinc -static -ffreestanding \
        -fno-stack-protector -O2 -Wall -Wno-unused-parameter -Werror \
        -I"$ksrc/tools/include/nolibc" -I"$hdr/include" -include nolibc.h -o "$out.tmp" "$src" >&2
    ;;
esac
mv -f "$out.tmp" "$out"
echo "$out"
