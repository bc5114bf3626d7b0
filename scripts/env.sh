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
KMAKE_FLAGS=(ARCH="$KARCH" LLVM=1 RUSTC="$KRUSTC" RUSTDOC="$KRUSTDOC" BINDGEN="$KBINDGEN")

die() { printf 'error: %s\n' "$*" >&2; exit 1; }

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
