#!/usr/bin/env bash
# Checks board-configs/buildroot (our BR2_EXTERNAL tree) against a Buildroot
# checkout, as far as that can go without downloading or cross-building:
#
#   1. Buildroot's own linter, utils/check-package, over every file of the tree;
#   2. a board defconfig (default qemu_aarch64_virt_defconfig) with the tree as
#      BR2_EXTERNAL, our fragment merged in, `make olddefconfig`: every option
#      the fragment sets must survive, and no legacy option may be set (Buildroot
#      refuses to build a .config with BR2_LEGACY);
#   3. `make snd-voip-show-info voipbridge-show-info`: both package .mk files
#      parse and resolve to the package infrastructures they name;
#   4. voipbridge's build and install commands as `make printvars` expands
#      them: the release-embedded profile, the features the options chose
#      (also with one turned off), and the built binary installed.
#
#   scripts/buildroot-check.sh BUILDROOT_DIR [DEFCONFIG]
#
# check-package needs the Python modules `magic` and `flake8`
# (pip install python-magic flake8). Nothing is built, nothing downloaded.
set -euo pipefail
. "$(dirname "$0")/env.sh"
BR=${1:-}
DEFCONFIG=${2:-qemu_aarch64_virt_defconfig}
[ -n "$BR" ] || die "usage: $0 BUILDROOT_DIR [DEFCONFIG]"
[ -x "$BR/utils/check-package" ] || die "$BR is not a Buildroot tree (no utils/check-package)"
[ -f "$BR/configs/$DEFCONFIG" ] || die "$BR/configs/$DEFCONFIG: no such defconfig"
python3 -c 'import magic, flake8' 2>/dev/null ||
    die "check-package needs python modules magic and flake8: pip install python-magic flake8"
EXT=$SND_VOIP_ROOT/board-configs/buildroot
FRAGMENT=$EXT/configs/snd_voip_defconfig.fragment
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

echo "== check-package ($(git -C "$BR" describe --always 2>/dev/null || echo "$BR"))"
(cd "$EXT" && "$BR/utils/check-package" --br2-external $(find . -type f ! -name README.md | sort))

echo "== $DEFCONFIG + $(basename "$FRAGMENT")"
make -s -C "$BR" O="$OUT" BR2_EXTERNAL="$EXT" "$DEFCONFIG" >/dev/null
"$BR/support/kconfig/merge_config.sh" -O "$OUT" -m "$OUT/.config" "$FRAGMENT" >/dev/null
# (olddefconfig warns about each option the merge reassigned: expected here)
make -s -C "$BR" O="$OUT" olddefconfig 2>&1 >/dev/null | { grep -v "warning: override: reassigning" || true; } >&2
fail=0
while IFS= read -r line; do
    case "$line" in ''|'#'*) continue ;; esac
    grep -qxF -- "$line" "$OUT/.config" || { echo "dropped by olddefconfig: $line" >&2; fail=1; }
done <"$FRAGMENT"
if grep -qx 'BR2_LEGACY=y' "$OUT/.config"; then
    echo "the merged .config sets a legacy option (BR2_LEGACY=y): Buildroot would refuse to build it" >&2
    fail=1
fi
[ "$fail" = 0 ] || die "the fragment does not apply cleanly to $DEFCONFIG"

echo "== package infrastructure"
make -s -C "$BR" O="$OUT" snd-voip-show-info voipbridge-show-info |
    python3 -c '
import json, sys
for line in sys.stdin:
    for name, info in json.loads(line).items():
        kind, version, lic = info["type"], info["version"], info["licenses"]
        files = ", ".join(info["license_files"]) or "no license file"
        deps = " ".join(info["dependencies"])
        print(f"{name}: {kind} package {version}, license {lic} ({files}), depends on {deps}")
'
echo "== voipbridge's build and install commands"
# printvars expands them as the build would (with @D empty): the board
# profile, the features the options chose, and an install of the binary
# the build made (not a cargo install, which would rebuild it with the
# default features). Then again with TLS off.
cmds() {
    make -s -C "$BR" O="$OUT" VARS="VOIPBRIDGE_BUILD_CMDS VOIPBRIDGE_INSTALL_TARGET_CMDS" printvars
}
check_cmds() { # FEATURES
    c=$(cmds)
    build=$(printf '%s\n' "$c" | grep -o 'cargo build .*') || die "VOIPBRIDGE_BUILD_CMDS runs no cargo build"
    for want in "--profile release-embedded" "--no-default-features" "--features \"$1\"" "--locked"; do
        case "$build" in *"$want"*) ;; *) die "voipbridge's cargo build lacks $want: $build" ;; esac
    done
    inst=$(printf '%s\n' "$c" | sed -n 's/^VOIPBRIDGE_INSTALL_TARGET_CMDS=//p')
    case "$inst" in
        *"cargo install"*) die "voipbridge's install step runs cargo install (a second build, default features)" ;;
        *"/release-embedded/voipbridge "*"/usr/bin/voipbridge"*) ;;
        *) die "voipbridge's install step does not install the release-embedded binary: $inst" ;;
    esac
    echo "voipbridge: cargo build --profile release-embedded --features \"$1\"; installs that binary"
}
check_cmds "tls,srtp,aec"
sed -i 's/^BR2_PACKAGE_VOIPBRIDGE_TLS=y$/# BR2_PACKAGE_VOIPBRIDGE_TLS is not set/' "$OUT/.config"
check_cmds "srtp,aec"

echo "buildroot-check: board-configs/buildroot passes against $BR ($DEFCONFIG)"
