# Shared settings for the snd-voip build scripts (sourced, not run).
# Every value can be overridden from the environment.
SND_VOIP_ROOT=${SND_VOIP_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
SND_VOIP_CACHE=${SND_VOIP_CACHE:-$HOME/.cache/snd-voip}
BOARD=${BOARD:-qemu-x86_64}
KSRC=${KSRC:-$SND_VOIP_CACHE/linux-source-6.12}
# The rustc + rust-src pair the 6.12 tree accepts (Debian's rustc-web, rust-web-src);
# rustup's rustc has no rust-src here. bindgen-cli comes from `cargo install`.
KRUSTC=${KRUSTC:-/usr/bin/rustc}
KRUSTDOC=${KRUSTDOC:-/usr/bin/rustdoc}
KBINDGEN=${KBINDGEN:-$(command -v bindgen 2>/dev/null || echo "$HOME/.cargo/bin/bindgen")}
case "$BOARD" in
    qemu-arm64) KARCH=arm64; KIMAGE=arch/arm64/boot/Image; KTARGETS="Image modules" ;;
    *) KARCH=x86_64; KIMAGE=arch/x86/boot/bzImage; KTARGETS="bzImage modules" ;;
esac

# The kernel variant (README, "Which kernel each suite boots"):
#   debug  board fragments + board-configs/common/debug.config (KASAN,
#          lockdep, kmemleak): the card and RTOS suites, which must find
#          memory and locking bugs;
#   prod   the same board fragments without debug.config: the call tests
#          (demo-x86, linphone) and the benchmarks, where KASAN adds
#          minutes and distorts every figure. The x86_64 one is built with
#          GCC (a GCC-built tree is what many vendor kernels are; README
#          claims the module builds and loads on one, and this proves it);
#          arm64 has no GCC cross compiler here, so it stays clang.
# SND_VOIP_DEBUG=0 (the older switch) means prod.
if [ -z "${SND_VOIP_KERNEL:-}" ]; then
    if [ "${SND_VOIP_DEBUG:-1}" = 0 ]; then SND_VOIP_KERNEL=prod; else SND_VOIP_KERNEL=debug; fi
fi
case "$SND_VOIP_KERNEL" in
    debug|prod) ;;
    *) printf 'error: SND_VOIP_KERNEL=%s: want debug or prod\n' "$SND_VOIP_KERNEL" >&2; exit 2 ;;
esac
# The kernel's C compiler: clang (LLVM=1) unless KCC says gcc. KASAN with
# Rust needs clang on 6.12 (config RUST: !KASAN || CC_IS_CLANG).
if [ -z "${KCC:-}" ]; then
    if [ "$SND_VOIP_KERNEL/$KARCH" = prod/x86_64 ]; then KCC=gcc; else KCC=clang; fi
fi
KMAKE_FLAGS=(ARCH="$KARCH" RUSTC="$KRUSTC" RUSTDOC="$KRUSTDOC" BINDGEN="$KBINDGEN")
case "$KCC" in
    clang) KMAKE_FLAGS+=(LLVM=1) ;;
    gcc) ;;
    *) printf 'error: KCC=%s: want clang or gcc\n' "$KCC" >&2; exit 2 ;;
esac

# Cargo: one profile for everything the tests run (`cargo test`, the
# binaries the host tests and the guests run): `ci` in Cargo.toml, optimised
# with debug assertions and overflow checks on, so the dependencies compile
# once. Its target directory lives outside the clone, keyed by the host
# toolchain, so a new clone reuses what an earlier one compiled; crates of
# different checkouts get different hashes there and do not evict each
# other. The binaries a checkout's tests run are copied out of it, under a
# lock, into SND_VOIP_BIN (one per checkout path): cargo's own copies in
# $SND_VOIP_TARGET/ci are the last build's, whichever checkout ran it.
# A developer's worktree may keep its own: SND_VOIP_TARGET=$PWD/target.
SND_VOIP_PROFILE=${SND_VOIP_PROFILE:-ci}
snd_voip_key() { sha256sum | cut -c1-12; }
if [ -z "${SND_VOIP_TARGET:-}" ]; then
    SND_VOIP_TARGET=$SND_VOIP_CACHE/cargo-$( { rustc -vV 2>/dev/null; cargo -V 2>/dev/null; } | snd_voip_key)
fi
SND_VOIP_CHECKOUT_KEY=$(printf '%s\n' "$SND_VOIP_ROOT" | snd_voip_key)
SND_VOIP_BIN=${SND_VOIP_BIN:-$SND_VOIP_TARGET/bin-$(basename "$SND_VOIP_ROOT")-$SND_VOIP_CHECKOUT_KEY}
export SND_VOIP_ROOT SND_VOIP_CACHE SND_VOIP_TARGET SND_VOIP_PROFILE SND_VOIP_BIN

die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# with_lock PATH CMD...: run CMD holding an exclusive lock on PATH.lock
# (created as needed): several engineers, or several suites, may build into
# the same cache directory at once. Says so when it has to wait.
with_lock() {
    local lock=$1.lock
    shift
    mkdir -p "$(dirname "$lock")"
    (
        exec 9>"$lock"
        if ! flock -n 9; then
            printf '%s: waiting for %s\n' "$(basename "$0")" "$lock" >&2
            flock 9
        fi
        "$@"
    )
}

# unpack_debs DEBS ROOT SPEC...: `apt-get download` the Debian packages
# SPEC... (name[:arch][=version]) into DEBS and unpack each into ROOT with
# `dpkg -x` (no maintainer scripts run), adding its "Package Version
# Architecture" line to ROOT/.packages. Status 1 when any step fails.
unpack_debs() {
    local debs=$1 root=$2 d
    shift 2
    (cd "$debs" && apt-get download -q -o APT::Sandbox::User=root "$@" >&2) || return 1
    for d in "$debs"/*.deb; do
        dpkg -x "$d" "$root" || return 1
        dpkg-deb -f "$d" Package Version Architecture | paste -sd' ' >>"$root/.packages" || return 1
    done
}
