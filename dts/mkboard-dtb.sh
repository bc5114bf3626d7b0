#!/usr/bin/env bash
# Build the device tree of the emulated arm64 board (qemu -M virt) with the
# RTOS audio FIFO: qemu's own DTB for exactly the machine options the board
# boots with, plus a /reserved-memory node, plus dts/overlays/rtos-fifo.dtso
# applied with fdtoverlay (the same overlay a real board uses).
#
# usage: dts/mkboard-dtb.sh [options] -o OUT.dtb
#   --smp N                CPUs of the board (default 2)   } must equal the qemu
#   --mem MB               RAM in MB (default 512, >= 512) } options of the boot
#   --size HEX             size of the FIFO region (default 0x10000); if it
#                          does not end on a 4 KiB page, a no-map node
#                          audio-fifo-pad@... reserves the rest of that page
#   --capture-source VAL   snd-voip,capture-source: bridge|rtos (default rtos,
#                          as in the overlay), or none to leave it out
#   --playback-sink VAL    snd-voip,playback-sink: bridge|rtos|both (default
#                          rtos), or none to leave it out
#   --no-node              no audio-fifo node (a board without the FIFO; the
#                          empty /reserved-memory node is kept)
# Also writes OUT.dts (the decompiled result, for reading).
#
# Layout (fixed): RAM at 0x40000000, region at 0x5f000000, i.e. file offset
# 0x1f000000 in the RAM file of `run-guest.sh --region`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

out="" smp=2 mem=512 size=0x10000 capture=rtos playback=rtos node=1
while [ $# -gt 0 ]; do
    case "$1" in
        -o) out=$2; shift 2 ;;
        --smp) smp=$2; shift 2 ;;
        --mem) mem=$2; shift 2 ;;
        --size) size=$2; shift 2 ;;
        --capture-source) capture=$2; shift 2 ;;
        --playback-sink) playback=$2; shift 2 ;;
        --no-node) node=0; shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "mkboard-dtb: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -n "$out" ] || { echo "mkboard-dtb: -o OUT.dtb is required" >&2; exit 2; }
[ "$mem" -ge 512 ] || { echo "mkboard-dtb: --mem must be >= 512 (the region is at 0x5f000000)" >&2; exit 2; }
case "$size" in 0x[0-9a-fA-F]*) ;; *) echo "mkboard-dtb: --size must be hex (0x...)" >&2; exit 2 ;; esac
[ $((0x5f000000 + size)) -le $((0x40000000 + mem * 1024 * 1024)) ] \
    || { echo "mkboard-dtb: region 0x5f000000+$size ends beyond RAM (--mem $mem)" >&2; exit 2; }

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# 1. qemu's own DTB for these machine options (the same -M/-cpu as run-guest.sh).
qemu-system-aarch64 -M "virt,dumpdtb=$tmp/qemu.dtb" -cpu cortex-a57 -smp "$smp" -m "$mem" \
    -nographic -monitor none -serial none >"$tmp/qemu.log" 2>&1 \
    || { cat "$tmp/qemu.log" >&2; echo "mkboard-dtb: qemu could not dump its DTB" >&2; exit 1; }
# qemu fills in fresh seeds at every boot; a stored DTB must not carry fixed ones.
for p in rng-seed kaslr-seed; do
    if fdtget -p "$tmp/qemu.dtb" /chosen | grep -x "$p" >/dev/null; then fdtput -d "$tmp/qemu.dtb" /chosen "$p"; fi
done
# 2. The /reserved-memory node the overlay targets (virt has none).
if ! fdtget -l "$tmp/qemu.dtb" / | grep -x reserved-memory >/dev/null; then
    fdtput -c "$tmp/qemu.dtb" /reserved-memory
    fdtput -t u "$tmp/qemu.dtb" /reserved-memory '#address-cells' 2
    fdtput -t u "$tmp/qemu.dtb" /reserved-memory '#size-cells' 2
    fdtput "$tmp/qemu.dtb" /reserved-memory ranges
fi
cp "$tmp/qemu.dtb" "$tmp/board.dtb"
# 3. The overlay, as is; then the variant's values.
if [ "$node" = 1 ]; then
    dtc -@ -W no-reg_format -W no-avoid_default_addr_size -I dts -O dtb \
        -o "$tmp/rtos-fifo.dtbo" "$here/overlays/rtos-fifo.dtso"
    fdtoverlay -i "$tmp/qemu.dtb" -o "$tmp/board.dtb" "$tmp/rtos-fifo.dtbo"
    region=/reserved-memory/audio-fifo@5f000000
    fdtput -t x "$tmp/board.dtb" "$region" reg 0 0x5f000000 0 "${size#0x}"
    # arm64 takes no-map pages out of the linear map whole, but memblock still
    # hands out the rest of a partly reserved page: a region that does not end
    # on a page boundary (the 0x80-byte test variant) crashes the boot in
    # setup_per_cpu_areas. Reserve the rest of its last page too.
    pad=$(( (0x1000 - size % 0x1000) % 0x1000 ))
    if [ "$pad" -ne 0 ]; then
        padnode=$(printf '/reserved-memory/audio-fifo-pad@%x' $((0x5f000000 + size)))
        fdtput -c "$tmp/board.dtb" "$padnode"
        fdtput -t x "$tmp/board.dtb" "$padnode" reg 0 "$(printf %x $((0x5f000000 + size)))" 0 "$(printf %x "$pad")"
        fdtput "$tmp/board.dtb" "$padnode" no-map
    fi
    for kv in "capture-source=$capture" "playback-sink=$playback"; do
        k=snd-voip,${kv%%=*} v=${kv#*=}
        if [ "$v" = none ]; then fdtput -d "$tmp/board.dtb" /audio-fifo "$k"
        else fdtput -t s "$tmp/board.dtb" /audio-fifo "$k" "$v"; fi
    done
fi
dtc -q -I dtb -O dts -o "$tmp/board.dts" "$tmp/board.dtb"
mkdir -p "$(dirname "$out")"
cp "$tmp/board.dtb" "$out"
cp "$tmp/board.dts" "$out.dts"
echo "mkboard-dtb: $out (smp $smp, mem ${mem}M$([ "$node" = 1 ] && echo ", region 0x5f000000 size $size, capture-source $capture, playback-sink $playback" || echo ", no audio-fifo node"))" >&2
