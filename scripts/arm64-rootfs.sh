#!/usr/bin/env bash
# Build (or reuse) the arm64 userspace of the qemu-arm64 board from Debian
# bookworm arm64 packages: busybox-static, alsa-utils (aplay, arecord, amixer)
# with the shared libraries they need, libc6 and /usr/share/alsa, and the
# demo's SIP peers (tests/demo/board.sh): baresip-core and kamailio with the
# libraries of the modules the demo loads (MODS below).
# The packages are fetched with `apt-get download` and unpacked with `dpkg -x`
# (no chroot, no qemu-user). Needs `dpkg --add-architecture arm64` and an
# apt-get update (scripts/setup.sh does both).
#
#   scripts/arm64-rootfs.sh          build unless cached; print the directory
#   scripts/arm64-rootfs.sh --print  print the directory only (may not exist yet)
#
# Output: $SND_VOIP_CACHE/rootfs-arm64-<hash of the package list>. Extra
# packages: SND_VOIP_ARM64_EXTRA_PKGS="pkg1 pkg2" (part of the hash).
set -euo pipefail
. "$(dirname "$0")/env.sh"

# Bump LAYOUT when this script changes what it puts into the directory.
LAYOUT=2
PKGS=(
    libc6 libgcc-s1
    busybox-static
    alsa-utils libasound2 libasound2-data libatopology2 libfftw3-single3
    libncursesw6 libtinfo6 libsamplerate0
    # the demo's far-end phone (baresip 1.0) and registrar (kamailio 5.6)
    baresip-core libre0 librem0 libsndfile1 libflac12 libogg0 libvorbis0a
    libvorbisenc2 libopus0 libmp3lame0 libmpg123-0 libssl3 zlib1g
    kamailio libreadline8
    ${SND_VOIP_ARM64_EXTRA_PKGS:-}
)
BINS=(bin/busybox usr/bin/aplay usr/bin/arecord usr/bin/amixer usr/bin/baresip usr/sbin/kamailio)
# Plugins loaded with dlopen (no NEEDED entry points at them): each must exist
# and find its libraries, like the programs.
MODS=()
for m in g711 aufile ausine sndfile account stdio menu alsa uuid; do
    MODS+=("usr/lib/baresip/modules/$m.so")
done
for m in sl tm rr maxfwd textops siputils pv usrloc registrar db_text auth auth_db kex ctl jsonrpcs xlog; do
    MODS+=("usr/lib/aarch64-linux-gnu/kamailio/modules/$m.so")
done

key=$(printf '%s\n' "layout $LAYOUT" "${PKGS[@]}" | sha256sum | cut -c1-12)
dir="$SND_VOIP_CACHE/rootfs-arm64-$key"

case "${1:-}" in
    --print) echo "$dir"; exit 0 ;;
    "") ;;
    *) die "unknown argument $1" ;;
esac
if [ -f "$dir/.snd-voip-rootfs" ]; then
    echo "$dir"; exit 0
fi

dpkg --print-foreign-architectures | grep -x arm64 >/dev/null \
    || die "arm64 is not a dpkg architecture here: run 'make setup' (dpkg --add-architecture arm64; apt-get update)"

echo "rootfs-arm64: building $dir" >&2
tmp=$(mktemp -d "$SND_VOIP_CACHE/rootfs-arm64.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/debs" "$tmp/root"
# Architecture-independent packages (libasound2-data) have no :arm64 variant.
specs=()
for p in "${PKGS[@]}"; do
    # (grep without -q: closing the pipe early would fail it under pipefail)
    if apt-cache show "$p:arm64" 2>/dev/null | grep '^Architecture: arm64' >/dev/null; then
        specs+=("$p:arm64")
    elif apt-cache show "$p" 2>/dev/null | grep '^Architecture: all' >/dev/null; then
        specs+=("$p")
    else
        die "package $p:arm64 unknown to apt: run 'make setup' (apt-get update with arm64)"
    fi
done
unpack_debs "$tmp/debs" "$tmp/root" "${specs[@]}" \
    || die "could not download or unpack the arm64 packages (apt-get update with arm64? run 'make setup')"

r=$tmp/root
# busybox applets as links, never over a real program (aplay, amixer...).
# The arm64 busybox cannot run here (no qemu-user): take the applet list from the
# host's busybox-static, the same Debian build for another architecture.
applets=$(command -v busybox >/dev/null && busybox --list-full || true)
[ -n "$applets" ] || die "the host's busybox (busybox-static) is needed for the applet list"
for a in $applets; do
    [ -e "$r/$a" ] || [ -L "$r/$a" ] && continue
    mkdir -p "$r/$(dirname "$a")"
    ln -s /bin/busybox "$r/$a"
done
# Mount points and the little /etc the guest's init and ALSA need.
mkdir -p "$r"/{proc,sys,dev,tmp,run,root,mnt,var/tmp,var/log,lib/modules,etc}
echo 'root:x:0:0:root:/root:/bin/sh' >"$r/etc/passwd"
printf 'root:x:0:\naudio:x:29:\n' >"$r/etc/group"
echo 'snd-voip-arm64' >"$r/etc/hostname"

# Every ELF program and listed plugin must find each library it needs inside
# the rootfs, and so must those libraries (followed transitively).
libdirs=(lib/aarch64-linux-gnu usr/lib/aarch64-linux-gnu lib usr/lib)
for b in "${BINS[@]}" "${MODS[@]}"; do
    [ -f "$r/$b" ] || die "$b missing from the unpacked packages"
    case "$(file -bL "$r/$b")" in *'ARM aarch64'*) ;; *) die "$b is not an arm64 program" ;; esac
done
missing=0
declare -A seen=()
todo=()
while IFS= read -r -d '' f; do
    case "$(file -b "$f")" in 'ELF 64-bit LSB '*'ARM aarch64'*) todo+=("${f#"$r"/}") ;; esac
done < <(find "$r/bin" "$r/usr/bin" "$r/sbin" "$r/usr/sbin" -type f -print0 2>/dev/null)
todo+=("${MODS[@]}")
while [ ${#todo[@]} -gt 0 ]; do
    f=${todo[-1]}; unset 'todo[-1]'
    [ -z "${seen[$f]:-}" ] || continue
    seen[$f]=1
    dyn=$(readelf -d "$r/$f" 2>/dev/null || true)
    # RPATH/RUNPATH (kamailio's modules find libsrdb1 in its private directory)
    rpath=$(sed -n 's/.*(R\(UN\)\{0,1\}PATH).*\[\(.*\)\]/\2/p' <<<"$dyn" | tr ':' ' ')
    rpath=${rpath//\$ORIGIN/$(dirname "$f")}
    for lib in $(sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' <<<"$dyn"); do
        found=""
        for ld in "${libdirs[@]}" $rpath; do ld=${ld#/}; ld=${ld%/}; [ -e "$r/$ld/$lib" ] && { found=$ld/$lib; break; }; done
        if [ -n "$found" ]; then
            todo+=("$found")
        else
            echo "rootfs-arm64: $f needs $lib, not in the rootfs" >&2; missing=1
        fi
    done
done
[ "$missing" = 0 ] || die "add the packages holding the libraries above to PKGS"
interp=$(readelf -l "$r/usr/bin/aplay" | sed -n 's/.*interpreter: \(.*\)\]/\1/p')
[ -e "$r$interp" ] || die "dynamic loader $interp missing from the rootfs"
[ -f "$r/usr/share/alsa/alsa.conf" ] || die "/usr/share/alsa/alsa.conf missing (libasound2-data)"

touch "$r/.snd-voip-rootfs"
rm -rf "$dir"
mv "$r" "$dir"
echo "rootfs-arm64: $(wc -l <"$dir/.packages") packages, $(du -sh "$dir" | cut -f1)" >&2
echo "$dir"
