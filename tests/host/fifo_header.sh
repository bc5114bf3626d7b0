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
    echo "int main(void) { return 0; }"
} >"$src"
if cc -std=c11 -Wall -Werror "$src" -o "$bin" 2>/tmp/fifo_header.err; then
    echo "PASS: C header field offsets equal logic/fifo.rs ($(grep -c _Static_assert "$src") fields)"
    echo "1 passed, 0 failed"
else
    echo "FAIL: C header differs from logic/fifo.rs: $(head -n 3 /tmp/fifo_header.err)"
    echo "0 passed, 1 failed"
    exit 1
fi
