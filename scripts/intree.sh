#!/usr/bin/env bash
# Proves the in-tree integration: drops kmod-snd-voip/ into a copy of the
# reference kernel tree as sound/drivers/voip/, wires it into
# sound/drivers/Kconfig and Makefile exactly as README describes, enables
# CONFIG_SND_VOIP=m on top of the reference config and builds the module.
#
#   scripts/intree.sh            build; prints the path of the in-tree snd-voip.ko
#
# The copy and its build directory are cached per (reference build,
# checkout) in $SND_VOIP_CACHE/intree-*: a later run re-syncs the driver's
# sources and Kbuild rebuilds only what changed. Warnings fail the build.
set -euo pipefail
. "$(dirname "$0")/env.sh"
ref=$("$SND_VOIP_ROOT/scripts/kernel.sh" --print-kdir)
[ -f "$ref/.snd-voip-built" ] || die "reference kernel not built: run 'make kernel'"
T=$SND_VOIP_CACHE/intree-$(basename "$ref")-$SND_VOIP_CHECKOUT_KEY
km() { make -C "$T/src" O="$T/build" "${KMAKE_FLAGS[@]}" "$@"; }
# sync: exactly the files README tells a user to copy, into sound/drivers/voip.
sync() {
    mkdir -p "$T/src/sound/drivers/voip"
    rsync -a --delete --include='/Kbuild' --include='/Kconfig' --include='/*.rs' --include='/*.c' --include='/*.h' \
        --include='/logic/' --include='/logic/*.rs' --include='/safe/***' --exclude='*' "$SND_VOIP_ROOT/kmod-snd-voip/" "$T/src/sound/drivers/voip/"
}
prepare() {
    rm -rf "$T"
    mkdir -p "$T/build"
    # A hard-linked copy of the source tree: cheap, and edits below replace
    # files (sed -i, rsync, cp) instead of writing through the links.
    cp -al "$KSRC" "$T/src"
    # source the Kconfig inside the SND_DRIVERS block, add the directory to the Makefile.
    sed -i -E 's|^endif[[:space:]]*# SND_DRIVERS|source "sound/drivers/voip/Kconfig"\n\nendif # SND_DRIVERS|' "$T/src/sound/drivers/Kconfig"
    grep -q 'sound/drivers/voip/Kconfig' "$T/src/sound/drivers/Kconfig" || die "could not hook sound/drivers/Kconfig"
    sed -i '$a obj-$(CONFIG_SND_VOIP) += voip/' "$T/src/sound/drivers/Makefile"
    sync
    cp "$ref/.config" "$T/build/.config"
    # Adding a module does not change vmlinux: modpost checks the modules
    # against the reference build's vmlinux.o instead of relinking the kernel.
    ln "$ref/vmlinux.o" "$T/build/vmlinux.o" 2>/dev/null || cp "$ref/vmlinux.o" "$T/build/vmlinux.o"
    echo "CONFIG_SND_VOIP=m" >>"$T/build/.config"
    km -s olddefconfig
    grep -qx "CONFIG_SND_VOIP=m" "$T/build/.config" || die "CONFIG_SND_VOIP=m did not take (check depends on SND && RUST)"
    touch "$T/.prepared"
}
build() {
    [ -f "$T/.prepared" ] && [ "$T/.prepared" -nt "$ref/.snd-voip-built" ] || prepare
    sync
    local rc=0
    km -j"$(nproc)" KCFLAGS=-Werror KRUSTFLAGS=-Dwarnings modules >"$T/build.log" 2>&1 || rc=$?
    grep -E "voip|error|warning" "$T/build.log" >&2 || true
    [ "$rc" = 0 ] || die "in-tree build failed (exit $rc; see $T/build.log)"
    if grep -E "warning:" "$T/build.log" | grep -q voip; then die "in-tree build printed warnings (see $T/build.log)"; fi
    [ -f "$T/build/sound/drivers/voip/snd-voip.ko" ] || die "no snd-voip.ko produced"
    modinfo "$T/build/sound/drivers/voip/snd-voip.ko" | grep -E "^(name|intree|vermagic)" >&2
}
with_lock "$T" build
echo "$T/build/sound/drivers/voip/snd-voip.ko"
