#!/usr/bin/env bash
# snd-voip: install everything the build, the demo and the tests need on a
# Debian bookworm machine. Idempotent: re-running it installs only what is missing.
set -euo pipefail

log() { printf '[setup] %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

BACKPORTS=/etc/apt/sources.list.d/bookworm-backports.sources
if [ ! -f "$BACKPORTS" ]; then
    log "adding bookworm-backports (for qemu 10)"
    $SUDO tee "$BACKPORTS" >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    rm -f /var/lib/snd-voip-apt-updated
fi

# Packages from bookworm (and bookworm-security).
MAIN_PKGS=(
    # kernel build (clang/LLVM, as the Rust-for-Linux build wants)
    build-essential clang lld llvm libclang-dev flex bison bc libelf-dev libssl-dev
    cpio kmod xz-utils rsync python3 git
    # the kernel source tree and the rustc + rust-src pair it accepts
    linux-source-6.12 rustc-web rust-web-src
    # guest userspace and ALSA tools
    busybox-static alsa-utils libasound2-dev libasound2-plugins pkgconf
    # device tree
    device-tree-compiler python3-venv
    # SIP peers and audio analysis for the tests
    sip-tester baresip-core linphone-cli kamailio sox python3-numpy python3-matplotlib tshark
    iproute2 procps psmisc
)
BPO_PKGS=(qemu-system-x86 qemu-system-arm)

missing=()
for p in "${MAIN_PKGS[@]}" "${BPO_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing: ${missing[*]}"
    $SUDO apt-get update -q
    # tshark asks whether non-root users may capture; answer no.
    echo 'wireshark-common wireshark-common/install-setuid boolean false' | $SUDO debconf-set-selections
    main_missing=() bpo_missing=()
    for p in "${missing[@]}"; do
        case " ${BPO_PKGS[*]} " in *" $p "*) bpo_missing+=("$p");; *) main_missing+=("$p");; esac
    done
    # Never start services (kamailio) from maintainer scripts: tests start their own.
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
        $SUDO chmod +x "$policy"; own_policy=1
    fi
    if [ ${#main_missing[@]} -gt 0 ]; then
        $SUDO apt-get install -y -q --no-install-recommends "${main_missing[@]}"
    fi
    if [ ${#bpo_missing[@]} -gt 0 ]; then
        $SUDO apt-get install -y -q --no-install-recommends -t bookworm-backports "${bpo_missing[@]}"
    fi
    if [ "$own_policy" = 1 ]; then $SUDO rm -f "$policy"; fi
else
    log "apt packages: all present"
fi

# bindgen: bookworm's 0.60 is too old for 6.12.
BINDGEN_VERSION=0.72.1
if ! command -v "$HOME/.cargo/bin/bindgen" >/dev/null 2>&1; then
    log "cargo install bindgen-cli"
    cargo install --locked bindgen-cli
else
    log "bindgen: $("$HOME/.cargo/bin/bindgen" --version)"
fi
: "$BINDGEN_VERSION"

# cargo-fuzz for `make fuzz` (voipbridge/fuzz; runs on stable with RUSTC_BOOTSTRAP=1).
if ! command -v "$HOME/.cargo/bin/cargo-fuzz" >/dev/null 2>&1; then
    log "cargo install cargo-fuzz"
    cargo install --locked cargo-fuzz
else
    log "cargo-fuzz: $("$HOME/.cargo/bin/cargo-fuzz" --version)"
fi

# The kernel source tree (unpacked once into the cache).
CACHE=${SND_VOIP_CACHE:-$HOME/.cache/snd-voip}
mkdir -p "$CACHE"
tarball=$(ls /usr/src/linux-source-6.12*.tar.xz 2>/dev/null | sort -V | tail -n1)
[ -n "$tarball" ] || { log "linux-source-6.12 tarball not found under /usr/src"; exit 1; }
srcname=$(basename "$tarball" .tar.xz)
if [ ! -f "$CACHE/$srcname/.unpacked" ]; then
    log "unpacking $tarball into $CACHE"
    rm -rf "${CACHE:?}/$srcname"
    tar -C "$CACHE" -xf "$tarball"
    touch "$CACHE/$srcname/.unpacked"
fi
log "kernel source: $CACHE/$srcname"

# dt-schema (PyPI dtschema) for `make dtbs-check`, in a venv of its own.
VENV=$CACHE/dtschema-venv
if [ ! -x "$VENV/bin/dt-validate" ]; then
    log "installing dtschema into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q dtschema
fi

# The emulated arm64 board (board-configs/qemu-arm64, tests/rtos): its userspace
# is Debian's arm64 packages unpacked by scripts/arm64-rootfs.sh (apt-get
# download + dpkg -x, no emulation); run-guest.sh needs file(1) and readelf.
if ! dpkg --print-foreign-architectures | grep -x arm64 >/dev/null; then
    log "adding the arm64 dpkg architecture (for the arm64 board's rootfs)"
    $SUDO dpkg --add-architecture arm64
    $SUDO apt-get update -q
fi
for p in file binutils; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep 'install ok installed' >/dev/null; then
        $SUDO apt-get install -y -q --no-install-recommends "$p"
    fi
done
log "arm64 rootfs: $(SND_VOIP_CACHE=$CACHE "$(dirname "$0")/arm64-rootfs.sh")"
log "done"
