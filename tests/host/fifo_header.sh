#!/usr/bin/env bash
# The RTOS team's C header (kmod-snd-voip/include/snd_voip_fifo.h) has the
# layout of logic/fifo.rs: the field offsets are compiled as static asserts.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
src=$(mktemp --suffix=.c); bin=${src%.c}
trap 'rm -f "$src" "$bin"' EXIT
{
    echo "#include \"$root/kmod-snd-voip/include/snd_voip_fifo.h\""
    echo "#include <stddef.h>"
    # Offsets from logic/fifo.rs (module off).
    sed -n 's/^ *pub const \([A-Z_]*\): usize = \([0-9]*\);/\1 \2/p' "$root/kmod-snd-voip/logic/fifo.rs" | while read -r name o; do
        field=$(echo "$name" | tr 'A-Z' 'a-z')
        case "$field" in version) field=version_major ;; esac
        echo "_Static_assert(offsetof(struct snd_voip_fifo_header, $field) == $o, \"$field at $o\");"
    done
    # Constants from logic/fifo.rs.
    for c in MAGIC:SND_VOIP_FIFO_MAGIC VERSION_MAJOR:SND_VOIP_FIFO_VERSION_MAJOR \
        VERSION_MINOR:SND_VOIP_FIFO_VERSION_MINOR HEADER_SIZE:SND_VOIP_FIFO_HEADER_SIZE; do
        v=$(sed -n "s/^pub const ${c%%:*}: u[0-9]* = \([0-9a-fx_]*\);.*/\1/p" "$root/kmod-snd-voip/logic/fifo.rs" | tr -d _)
        [ -n "$v" ] || { echo "_Static_assert(0, \"${c%%:*} not found in logic/fifo.rs\");"; continue; }
        echo "_Static_assert(${c#*:} == $v, \"${c#*:} == $v (logic/fifo.rs)\");"
    done
    # 1.1: the counters are 32-bit words; the high words follow them.
    echo "_Static_assert(sizeof(((struct snd_voip_fifo_header *)0)->write_frames) == 4, \"32-bit write counter\");"
    echo "_Static_assert(sizeof(((struct snd_voip_fifo_header *)0)->read_frames) == 4, \"32-bit read counter\");"
    echo "int main(void) { return snd_voip_fifo_fill(3, 0xfffffffeu) != 5; }"
} >"$src"
if cc -std=c11 -Wall -Werror "$src" -o "$bin" 2>/tmp/fifo_header.err && "$bin"; then
    echo "PASS: C header field offsets and constants equal logic/fifo.rs ($(grep -c _Static_assert "$src") checks), fill wraps at 2^32"
    echo "1 passed, 0 failed"
else
    echo "FAIL: C header differs from logic/fifo.rs: $(head -n 3 /tmp/fifo_header.err)"
    echo "0 passed, 1 failed"
    exit 1
fi
