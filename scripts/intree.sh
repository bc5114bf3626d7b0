#!/usr/bin/env bash
# Proves the in-tree integration: drops kmod-snd-voip/ into a copy of the
# reference kernel tree as sound/drivers/voip/, wires it into
# sound/drivers/Kconfig and Makefile exactly as README describes, enables
# CONFIG_SND_VOIP=m on top of the reference config and builds the module.
#
#   scripts/intree.sh            build; prints the path of the in-tree snd-voip.ko
set -euo pipefail
. "$(dirname "$0")/env.sh"
ref=$("$SND_VOIP_ROOT/scripts/kernel.sh" --print-kdir)
[ -f "$ref/.snd-voip-built" ] || die "reference kernel not built: run 'make kernel'"
T=$SND_VOIP_CACHE/intree-$BOARD
rm -rf "$T"
mkdir -p "$T/build"
# A hard-linked copy of the source tree: cheap, and edits below replace files
# (sed -i, cp) instead of writing through the links.
cp -al "$KSRC" "$T/src"
V=$T/src/sound/drivers/voip
mkdir -p "$V/logic"
cp "$SND_VOIP_ROOT"/kmod-snd-voip/{Kbuild,Kconfig,*.rs,*.c,*.h} "$V/"
cp "$SND_VOIP_ROOT"/kmod-snd-voip/logic/*.rs "$V/logic/"
# source the Kconfig inside the SND_DRIVERS block, add the directory to the Makefile.
sed -i -E 's|^endif[[:space:]]*# SND_DRIVERS|source "sound/drivers/voip/Kconfig"\n\nendif # SND_DRIVERS|' "$T/src/sound/drivers/Kconfig"
grep -q 'sound/drivers/voip/Kconfig' "$T/src/sound/drivers/Kconfig" || die "could not hook sound/drivers/Kconfig"
sed -i '$a obj-$(CONFIG_SND_VOIP) += voip/' "$T/src/sound/drivers/Makefile"
cp "$ref/.config" "$T/build/.config"
# Adding a module does not change vmlinux: modpost checks the modules against
# the reference build's vmlinux.o instead of relinking the kernel.
ln "$ref/vmlinux.o" "$T/build/vmlinux.o" 2>/dev/null || cp "$ref/vmlinux.o" "$T/build/vmlinux.o"
echo "CONFIG_SND_VOIP=m" >>"$T/build/.config"
km() { make -C "$T/src" O="$T/build" "${KMAKE_FLAGS[@]}" "$@"; }
km -s olddefconfig
grep -qx "CONFIG_SND_VOIP=m" "$T/build/.config" || die "CONFIG_SND_VOIP=m did not take (check depends on SND && RUST)"
km -j"$(nproc)" KCFLAGS=-Werror KRUSTFLAGS=-Dwarnings modules 2>&1 | tee "$T/build.log" | grep -E "voip|error|warning" || true
[ "${PIPESTATUS[0]}" = 0 ] || die "in-tree build failed (see $T/build.log)"
if grep -E "warning:" "$T/build.log" | grep -q voip; then die "in-tree build printed warnings (see $T/build.log)"; fi
[ -f "$T/build/sound/drivers/voip/snd-voip.ko" ] || die "no snd-voip.ko produced"
modinfo "$T/build/sound/drivers/voip/snd-voip.ko" | grep -E "^(name|intree|vermagic)"
echo "$T/build/sound/drivers/voip/snd-voip.ko"
