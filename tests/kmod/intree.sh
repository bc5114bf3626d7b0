#!/usr/bin/env bash
# In-tree integration test: build snd-voip as sound/drivers/voip in a copy of
# the reference tree (scripts/intree.sh), then boot and load that module.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
ko=$("$root/scripts/intree.sh" | tail -n 1)
[ -f "$ko" ] || { echo "FAIL: in-tree build produced no module"; exit 1; }
echo "PASS: in-tree build with CONFIG_SND_VOIP=m: $ko"
guest=$(mktemp)
trap 'rm -f "$guest"' EXIT
cat >"$guest" <<'GUEST'
modinfo snd-voip | grep -q "^intree: *Y" && echo "PASS: the installed module is the in-tree build" || { echo "FAIL: not the in-tree module"; exit 1; }
modprobe snd-voip || { echo "FAIL: modprobe snd-voip"; exit 1; }
aplay -l | grep -q "device 1: VoIP Bridge" && echo "PASS: in-tree snd-voip registers card VoIP" || { echo "FAIL: no card"; exit 1; }
rmmod snd_voip && echo "PASS: in-tree module unloads" || { echo "FAIL: rmmod"; exit 1; }
dmesg | grep -E "BUG:|WARNING:|KASAN|Oops" && { echo "FAIL: kernel log has reports"; exit 1; }
echo "PASS: kernel log is clean"
GUEST
"$root/tests/qemu/run-guest.sh" --timeout 300 --module "$ko" "$guest" | grep -a -E "^(PASS|FAIL)"
exit "${PIPESTATUS[0]}"
