#!/usr/bin/env bash
# The bring-up template's kernel fragment (board-configs/template-amp-board/
# kernel.config) on a vendor-like tree: arm64's own defconfig (not our
# tinyconfig base, which already has everything) with the fragment merged
# and olddefconfig run, as the template's README tells a board maintainer
# to do. Every line of the fragment must survive (a dependency it forgot
# would be dropped silently by merge_config).
# The reference boards' own fragments are checked the same way on every
# kernel build (scripts/kernel.sh).
#
#   scripts/kconfig-check.sh                  the merge check (make kconfig-check, in make test)
#   scripts/kconfig-check.sh --build-template also build modules_prepare and snd-voip.ko
#                                             against that tree (make template-build, in
#                                             make test-long: ~10 minutes of both cores)
set -euo pipefail
. "$(dirname "$0")/env.sh"
build=0
case "${1:-}" in
    --build-template) build=1 ;;
    "") ;;
    *) die "usage: $0 [--build-template]" ;;
esac
[ -f "$KSRC/Makefile" ] || die "kernel source not found at $KSRC: run 'make setup' first"
frag=$SND_VOIP_ROOT/board-configs/template-amp-board/kernel.config
kver=$(make -s -C "$KSRC" kernelversion)
flags=(ARCH=arm64 LLVM=1 RUSTC="$KRUSTC" RUSTDOC="$KRUSTDOC" BINDGEN="$KBINDGEN")
key=$( { echo "$kver arm64 defconfig"; cat "$frag"; "$KRUSTC" --version; "$KBINDGEN" --version 2>&1; clang --version | head -1; } | snd_voip_key)
O=$SND_VOIP_CACHE/template-amp-board-$kver-$key
km() { make -C "$KSRC" O="$O" "${flags[@]}" "$@"; }
check() {
    if [ -f "$O/.snd-voip-config-ok" ]; then
        echo "kconfig-check: the template fragment takes on arm64 defconfig (checked before: $O)"
    else
        rm -rf "$O"; mkdir -p "$O"
        km -s defconfig >"$O/defconfig.log" 2>&1 || { cat "$O/defconfig.log"; die "arm64 defconfig failed"; }
        "$KSRC/scripts/kconfig/merge_config.sh" -m -O "$O" "$O/.config" "$frag" >"$O/merge.log" 2>&1
        km -s olddefconfig >>"$O/merge.log" 2>&1 || { cat "$O/merge.log"; die "olddefconfig failed"; }
        if ! "$SND_VOIP_ROOT/scripts/config-check.sh" "$O/.config" "$frag"; then
            grep -E "RUST|MODVERSIONS|RANDSTRUCT|BTF|CFI" "$O/.config" | head -20 >&2
            echo "FAIL: board-configs/template-amp-board/kernel.config does not take on arm64 defconfig (above: what it asked for and what Kconfig kept)"
            exit 1
        fi
        touch "$O/.snd-voip-config-ok"
        echo "PASS: every line of board-configs/template-amp-board/kernel.config takes on arm64 defconfig ($(grep -c '^CONFIG_.*=y' "$O/.config") options set)"
    fi
    [ "$build" = 1 ] || return 0
    local t0=$SECONDS
    echo "template-build: modules_prepare of the defconfig + template tree ($O)"
    km -j"$(nproc)" modules_prepare >"$O/prepare.log" 2>&1 || { tail -n 30 "$O/prepare.log"; die "modules_prepare failed"; }
    # The module against that tree. No vmlinux was built, so modpost cannot
    # resolve the kernel's symbols: KBUILD_MODPOST_WARN keeps that a warning;
    # every warning from the compilers and objtool still fails the build.
    local src=$O/snd-voip-src
    rm -rf "$src"; mkdir -p "$src"
    rsync -a --exclude=tests "$SND_VOIP_ROOT/kmod-snd-voip/" "$src/"
    local rc=0
    make -C "$O" M="$src" "${flags[@]}" CONFIG_SND_VOIP=m KCFLAGS=-Werror KRUSTFLAGS=-Dwarnings \
        KBUILD_MODPOST_WARN=1 modules >"$O/module.log" 2>&1 || rc=$?
    if [ "$rc" != 0 ] || grep -v "modpost:.*undefined" "$O/module.log" | grep -q "warning:"; then
        cat "$O/module.log"; die "snd-voip.ko does not build against the template tree"
    fi
    echo "PASS: snd-voip.ko builds against arm64 defconfig + the template fragment ($((SECONDS - t0)) s): $(file -b "$src/snd-voip.ko" | cut -d, -f1-2)"
}
with_lock "$O" check
