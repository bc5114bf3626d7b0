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
