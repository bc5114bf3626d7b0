#!/usr/bin/env bash
# make dtbs-check: validate the binding with dt-doc-validate, compile the
# board DTS and the overlay with dtc, and validate the DTB with dt-validate.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${SND_VOIP_CACHE:-$HOME/.cache/snd-voip}/dtschema-venv
PATH=$venv/bin:$PATH
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
dt-doc-validate -u "$here/bindings" "$here/bindings/sound/snd-voip,rtos-fifo.yaml"
echo "PASS: binding schema is valid (dt-doc-validate)"
dtc -I dts -O dtb -o "$out/board.dtb" "$here/qemu-arm64-voip.dts" 2>"$out/dtc.log"
# An overlay cannot know its target's #address-cells/#size-cells: dtc's checks
# of reg against the default (2/1) do not apply to it.
dtc -@ -W no-reg_format -W no-avoid_default_addr_size -I dts -O dtb -o "$out/rtos-fifo.dtbo" "$here/overlays/rtos-fifo.dtso" 2>>"$out/dtc.log"
if [ -s "$out/dtc.log" ]; then cat "$out/dtc.log"; echo "FAIL: dtc warnings"; exit 1; fi
echo "PASS: board DTS and overlay compile without warnings (dtc)"
dt-mk-schema -j "$here/bindings" >"$out/schema.json"
dt-validate -s "$out/schema.json" "$out/board.dtb" 2>&1 | tee "$out/validate.log"
if grep -q "snd-voip\|audio-fifo" "$out/validate.log"; then
    echo "FAIL: the snd-voip node does not match its binding"; exit 1
fi
# A node breaking the binding must be caught (the check can fail).
sed 's/"rtos";$/"speaker";/' "$here/qemu-arm64-voip.dts" >"$out/bad.dts"
dtc -q -I dts -O dtb -o "$out/bad.dtb" "$out/bad.dts"
# (to a file first: grep -q closing the pipe early fails the pipeline under pipefail)
dt-validate -s "$out/schema.json" "$out/bad.dtb" >"$out/bad.log" 2>&1 || true
if grep -q "audio-fifo" "$out/bad.log"; then
    echo "PASS: dt-validate accepts the board node and rejects a bad playback-sink"
else
    echo "FAIL: dt-validate did not notice an invalid snd-voip,playback-sink"; exit 1
fi
# The arm64 board's generated DTB (qemu's dump + the overlay, dts/mkboard-dtb.sh)
# must satisfy the binding too, in its default and 0x80-byte-region variants,
# and a bad value in it must be rejected. dt-validate exits 0 whatever it
# finds (and on a file it cannot read), so "accepted" is only believed when
# it ran cleanly and rejected the same DTB with one value broken (fdtput):
# proof that it read that file against the binding.
command -v qemu-system-aarch64 >/dev/null || { echo "FAIL: qemu-system-aarch64 not installed: the generated arm64 board DTB cannot be checked (make setup)"; exit 1; }
command -v fdtput >/dev/null || { echo "FAIL: fdtput (device-tree-compiler) not installed (make setup)"; exit 1; }
# validate DTB: prints accepted or rejected; fails on a crash.
validate() {
    local rc=0
    dt-validate -s "$out/schema.json" "$1" >"$out/v.log" 2>&1 || rc=$?
    if [ "$rc" != 0 ] || grep -qE "Traceback|Error|No such file" "$out/v.log"; then
        cat "$out/v.log" >&2; echo "FAIL: dt-validate failed on $1 (exit $rc)" >&2; return 1
    fi
    if grep -q "audio-fifo" "$out/v.log"; then echo rejected; else echo accepted; fi
}
for v in "" "--size 0x80 --capture-source bridge --playback-sink both" "--playback-sink speaker"; do
    "$here/mkboard-dtb.sh" $v -o "$out/qemu-board.dtb" >"$out/mk.log" 2>&1 || { cat "$out/mk.log"; echo "FAIL: dts/mkboard-dtb.sh $v"; exit 1; }
    r=$(validate "$out/qemu-board.dtb") || exit 1
    case "$v" in *speaker*) want=rejected ;; *) want=accepted ;; esac
    [ "$r" = "$want" ] || { cat "$out/v.log"; echo "FAIL: dt-validate $r the generated arm64 board DTB ($v), expected $want"; exit 1; }
    if [ "$want" = accepted ]; then
        cp "$out/qemu-board.dtb" "$out/broken.dtb"
        fdtput -t s "$out/broken.dtb" /audio-fifo snd-voip,playback-sink speaker
        r=$(validate "$out/broken.dtb") || exit 1
        [ "$r" = rejected ] || { echo "FAIL: dt-validate accepted the generated DTB ($v) with playback-sink 'speaker': it did not read it"; exit 1; }
    fi
done
echo "PASS: the generated arm64 board DTB (dts/mkboard-dtb.sh) matches the binding in both variants; a bad value in each is rejected"
