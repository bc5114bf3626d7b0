#!/usr/bin/env bash
# snd-voip: install everything the build, the demo and the tests need on a
# Debian bookworm machine. Idempotent: re-running it installs only what is missing.
set -euo pipefail

log() { printf '[setup] %s\n' "$*" >&2; }
t_setup=$SECONDS

# Pinned tool versions: what the kernel cache key, the fuzz build and
# dtbs-check were verified with. A different installed version is replaced.
BINDGEN_VERSION=0.73.2   # bindgen-cli: bookworm's 0.60 is too old for 6.12
CARGO_FUZZ_VERSION=0.13.2
DTSCHEMA_VERSION=2026.9
CACHE=${SND_VOIP_CACHE:-$HOME/.cache/snd-voip}
mkdir -p "$CACHE"

# The two cargo installs compile for minutes on the CPU while apt below
# mostly waits on the network and dpkg: run them alongside (they need only
# cargo and a C linker, which this machine kind has before setup; without
# `cc` they wait for apt's build-essential).
cargo_tool() { # NAME CRATE VERSION: install CRATE@VERSION unless NAME --version says VERSION
    local have
    have=$("$HOME/.cargo/bin/$1" --version 2>/dev/null | awk '{print $NF}' || true)
    [ "$1" = cargo-fuzz ] && have=$(cargo fuzz --version 2>/dev/null | awk '{print $NF}' || true)
    if [ "$have" = "$3" ]; then
        log "$2 $3: present"
    else
        log "cargo install $2@$3 (installed: ${have:-none})"
        cargo install --locked --force "$2@$3"
    fi
}
cargo_tools() {
    cargo_tool bindgen bindgen-cli "$BINDGEN_VERSION" && cargo_tool cargo-fuzz cargo-fuzz "$CARGO_FUZZ_VERSION"
}
tools_pid=""
if command -v cc >/dev/null; then
    cargo_tools >"$CACHE/setup-cargo-tools.log" 2>&1 &
    tools_pid=$!
fi

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
    sip-tester baresip-core linphone-cli kamailio kamailio-tls-modules sox python3-numpy python3-matplotlib tshark
    iproute2 procps psmisc strace
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

# bindgen-cli and cargo-fuzz (started above, or now that apt brought cc).
if [ -n "$tools_pid" ]; then
    if ! wait "$tools_pid"; then cat "$CACHE/setup-cargo-tools.log" >&2; log "cargo install failed"; exit 1; fi
    grep '^\[setup\]' "$CACHE/setup-cargo-tools.log" >&2 || true
else
    cargo_tools
fi
# The kernel source tree (unpacked once into the cache).
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
have=$("$VENV/bin/pip" show dtschema 2>/dev/null | sed -n 's/^Version: //p' || true)
if [ "$have" != "$DTSCHEMA_VERSION" ]; then
    log "installing dtschema $DTSCHEMA_VERSION into $VENV (installed: ${have:-none})"
    [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "dtschema==$DTSCHEMA_VERSION"
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
log "done in $((SECONDS - t_setup)) s"
