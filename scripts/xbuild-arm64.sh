#!/usr/bin/env bash
# Cross-build voipbridge and the test tools the guests run (audiotest,
# pcmcheck) for the emulated arm64 board (aarch64-unknown-linux-gnu) and
# print the path of voipbridge; the three are in one directory
# (--print-bin-dir). Nothing arm64 is apt-installed (that would
# upgrade the host's amd64 libraries): the target's C libraries and Rust std
# come from Debian arm64 packages fetched with `apt-get download` and unpacked
# with `dpkg -x` into two cached sysroots:
#
#   $SND_VOIP_CACHE/sysroot-arm64-<hash>      libc6(-dev), linux-libc-dev,
#       libgcc-s1, libgcc-12-dev, libasound2(-dev): what clang + lld link against
#       and what pkg-config finds alsa.pc in
#   $SND_VOIP_CACHE/rust-sysroot-arm64-<hash> lib/rustlib/aarch64-unknown-linux-gnu
#       from libstd-rust-web-dev:arm64 of exactly the version of the host's
#       rustc-web (/usr/bin/rustc, Debian 1.96), which compiles the build
#
# The hash covers the package list and the rustc-web version. Cargo builds
# into $SND_VOIP_CACHE/xbuild-arm64-<rustc-web version> (outside the clone,
# and apart from the host builds, which use rustup's rustc) under its lock,
# reuses what is up to date, and the binaries are copied out into a
# directory of this checkout's own ($SND_VOIP_BIN-arm64). Everything is
# built with the workspace's release-embedded profile (LTO, one codegen
# unit, stripped: what a board ships, so the board demo runs that binary);
# $XBUILD_PROFILE picks another (e.g. release, for comparison). The stripped
# size of voipbridge goes to stderr.
#
# usage: scripts/xbuild-arm64.sh [--print | --print-bin-dir] [-j N] [-p PACKAGE]
#   --print          print voipbridge's path only (it may not exist yet)
#   --print-bin-dir  print the directory of the arm64 binaries only
#   -p PKG           build this workspace package's binary of the same name
#                    instead of the test set (e.g. aec-eval, for the
#                    canceller's arm64 bench) and print its path
#   --features F     voipbridge alone with only these cargo features (a
#                    comma list of tls, srtp, aec, or "none"; README "Cargo
#                    features"), into a directory of its own, and print its
#                    path (for the footprint bench: what leaving them out saves)
#   -j N      cargo jobs (default: $XBUILD_JOBS, else 1: a cold build takes
#             ~5 min on one core and leaves the other to running tests)
# Needs: make setup (dpkg --add-architecture arm64, rustc-web, clang, lld).
set -euo pipefail
. "$(dirname "$0")/env.sh"
root=$SND_VOIP_ROOT
TRIPLE=aarch64-unknown-linux-gnu
rustver=$(dpkg-query -W -f='${Version}' rustc-web 2>/dev/null || echo none)
tdir=$SND_VOIP_CACHE/xbuild-arm64-$(echo "$rustver" | snd_voip_key)
bindir=$SND_VOIP_BIN-arm64
bin=$bindir/voipbridge
BINS=(voipbridge audiotest pcmcheck)
profile=${XBUILD_PROFILE:-release-embedded}
feat_args=()

jobs=${XBUILD_JOBS:-1}
while [ $# -gt 0 ]; do
    case "$1" in
        --print) echo "$bin"; exit 0 ;;
        --print-bin-dir) echo "$bindir"; exit 0 ;;
        -j) jobs=$2; shift 2 ;;
        -p) BINS=("$2"); bin=$bindir/$2; shift 2 ;;
        --features)
            case "$2" in
                none) feat_args=(--no-default-features) ;;
                *[!a-z,]*|"") echo "xbuild-arm64: --features wants a comma list of tls, srtp, aec, or none" >&2; exit 2 ;;
                *) feat_args=(--no-default-features --features "$2") ;;
            esac
            BINS=(voipbridge); bindir=$SND_VOIP_BIN-arm64-features-$(echo "$2" | tr , -); bin=$bindir/voipbridge
            shift 2 ;;
        -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
        *) echo "xbuild-arm64: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

log() { printf 'xbuild-arm64: %s\n' "$*" >&2; }
[ -x "$KRUSTC" ] || die "xbuild-arm64: $KRUSTC not found: run 'make setup' (Debian's rustc-web)"
for t in clang ld.lld llvm-ar llvm-strip pkg-config readelf file; do
    command -v "$t" >/dev/null || die "xbuild-arm64: $t not found: run 'make setup'"
done
dpkg --print-foreign-architectures | grep -x arm64 >/dev/null \
    || die "xbuild-arm64: arm64 is not a dpkg architecture here: run 'make setup'"
[ "$rustver" != none ] || die "xbuild-arm64: rustc-web is not installed: run 'make setup'"

# Bump LAYOUT when this script changes what it puts into the sysroots.
LAYOUT=1
C_PKGS=(libc6 libc6-dev linux-libc-dev libgcc-s1 libgcc-12-dev libasound2 libasound2-dev)
ckey=$(printf '%s\n' "layout $LAYOUT" "${C_PKGS[@]}" | sha256sum | cut -c1-12)
rkey=$(printf '%s\n' "layout $LAYOUT" "libstd-rust-web-dev $rustver" | sha256sum | cut -c1-12)
csys=$SND_VOIP_CACHE/sysroot-arm64-$ckey
rsys=$SND_VOIP_CACHE/rust-sysroot-arm64-$rkey

# fetch ROOT SPEC...: download the packages into $tmp/debs, unpack them into ROOT.
fetch() {
    local r=$1; shift
    unpack_debs "$tmp/debs" "$r" "$@" \
        || die "xbuild-arm64: apt-get download or dpkg -x of $* failed (apt-get update with arm64? run 'make setup')"
}

mkdir -p "$SND_VOIP_CACHE"
tmp=""
trap '[ -z "$tmp" ] || rm -rf "$tmp"' EXIT
if [ ! -f "$csys/.snd-voip-sysroot" ]; then
    t0=$SECONDS
    log "building the C sysroot $csys"
    tmp=$(mktemp -d "$SND_VOIP_CACHE/sysroot-arm64.tmp.XXXXXX")
    mkdir -p "$tmp/debs" "$tmp/root"
    fetch "$tmp/root" "${C_PKGS[@]/%/:arm64}"
    # libc.so and friends are linker scripts naming absolute paths: lld
    # resolves them inside --sysroot, so they must exist there (they do, from
    # libc6); check the pieces a link needs.
    for f in usr/lib/aarch64-linux-gnu/crt1.o usr/lib/aarch64-linux-gnu/libc.so \
        lib/aarch64-linux-gnu/libc.so.6 lib/ld-linux-aarch64.so.1 \
        usr/lib/aarch64-linux-gnu/libasound.so usr/lib/aarch64-linux-gnu/pkgconfig/alsa.pc; do
        [ -e "$tmp/root/$f" ] || [ -L "$tmp/root/$f" ] || die "xbuild-arm64: $f missing from the unpacked packages"
    done
    ls -d "$tmp"/root/usr/lib/gcc/aarch64-linux-gnu/*/crtbegin.o >/dev/null 2>&1 \
        || die "xbuild-arm64: crtbegin.o (libgcc-12-dev) missing"
    touch "$tmp/root/.snd-voip-sysroot"
    rm -rf "$csys"; mv "$tmp/root" "$csys"; rm -rf "$tmp"; tmp=""
    log "C sysroot: $(wc -l <"$csys/.packages") packages, $(du -sh "$csys" | cut -f1), $((SECONDS - t0)) s"
fi
if [ ! -f "$rsys/.snd-voip-sysroot" ]; then
    t0=$SECONDS
    log "building the Rust sysroot $rsys (libstd-rust-web-dev:arm64 $rustver)"
    tmp=$(mktemp -d "$SND_VOIP_CACHE/rust-sysroot-arm64.tmp.XXXXXX")
    mkdir -p "$tmp/debs" "$tmp/x" "$tmp/root/lib/rustlib"
    fetch "$tmp/x" "libstd-rust-web-dev:arm64=$rustver"
    [ -d "$tmp/x/usr/lib/rustlib/$TRIPLE/lib" ] || die "xbuild-arm64: no usr/lib/rustlib/$TRIPLE in libstd-rust-web-dev:arm64"
    mv "$tmp/x/usr/lib/rustlib/$TRIPLE" "$tmp/root/lib/rustlib/"
    echo "libstd-rust-web-dev:arm64 $rustver" >"$tmp/root/.packages"
    touch "$tmp/root/.snd-voip-sysroot"
    rm -rf "$rsys"; mv "$tmp/root" "$rsys"; rm -rf "$tmp"; tmp=""
    log "Rust sysroot: $(du -sh "$rsys" | cut -f1), $((SECONDS - t0)) s"
fi

export RUSTC=$KRUSTC
export CARGO_TARGET_DIR=$tdir
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=clang
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="--sysroot=$rsys -Clink-arg=--target=aarch64-linux-gnu -Clink-arg=--sysroot=$csys -Clink-arg=-fuse-ld=lld"
# C code of crates (ring, for TLS) is compiled by the same clang for arm64
# against the C sysroot (no gcc cross compiler needed).
export CC_aarch64_unknown_linux_gnu=clang
export AR_aarch64_unknown_linux_gnu=llvm-ar
export CFLAGS_aarch64_unknown_linux_gnu="--target=aarch64-linux-gnu --sysroot=$csys"
export PKG_CONFIG_ALLOW_CROSS=1
export PKG_CONFIG_SYSROOT_DIR=$csys
export PKG_CONFIG_LIBDIR=$csys/usr/lib/aarch64-linux-gnu/pkgconfig:$csys/usr/share/pkgconfig
unset PKG_CONFIG_PATH
build() {
    local t0=$SECONDS b
    cd "$root"
    if ! cargo build -q --profile "$profile" --locked -j "$jobs" --target "$TRIPLE" "${feat_args[@]}" "${BINS[@]/#/-p}" >&2; then
        die "xbuild-arm64: cargo build for $TRIPLE failed (see above)"
    fi
    [ $((SECONDS - t0)) -lt 5 ] || log "cargo build: $((SECONDS - t0)) s"
    mkdir -p "$bindir"
    for b in "${BINS[@]}"; do
        case "$(file -b "$tdir/$TRIPLE/$profile/$b")" in
            *'ARM aarch64'*) ;;
            *) die "xbuild-arm64: $tdir/$TRIPLE/$profile/$b is not an arm64 program: $(file -b "$tdir/$TRIPLE/$profile/$b")" ;;
        esac
        # The guests copy or page in these over 9p: no debug info (5 MB, not 45).
        llvm-strip --strip-debug -o "$bindir/.$b.tmp" "$tdir/$TRIPLE/$profile/$b"
        mv -f "$bindir/.$b.tmp" "$bindir/$b"
    done
    log "voipbridge: profile $profile${feat_args:+, ${feat_args[*]}}, $(stat -c %s "$bindir/voipbridge") bytes stripped"
}
with_lock "$tdir" build
echo "$bin"
