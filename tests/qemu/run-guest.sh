#!/usr/bin/env bash
# Boot a kernel in qemu (TCG), run a script inside it, and return the script's
# exit status and output. Shared by the card, bridge, RTOS-FIFO and demo tests.
#
# usage: tests/qemu/run-guest.sh [options] SCRIPT [ARGS...]
#
#   --kernel IMAGE     kernel image (default: `make -s print-kernel`)
#   --kdir DIR         kernel build directory for its modules (default: `make -s print-kdir`)
#   --module KO        extra module to install under /lib/modules (repeatable;
#                      default: kmod-snd-voip/snd-voip.ko when it exists)
#   --mode MODE        hostroot (default): the guest runs the host's own root
#                      filesystem read-only over 9p (virtme-style), so every host
#                      binary (aplay, baresip, kamailio, voipbridge...) runs inside it;
#                      initramfs: a minimal busybox initramfs with only the
#                      binaries listed by --bin (and their libraries)
#   --bin PATH         binary to copy into the initramfs (initramfs mode; repeatable)
#   --timeout SECONDS  kill the guest after this long (default 600)
#   --out DIR          directory the guest sees read-write as $GUEST_OUT
#                      (default: a fresh temporary directory, printed at the end)
#   --mem MB           guest memory (default 1024)
#   --smp N            guest CPUs (default 2)
#   --append ARGS      extra kernel command line
#   --qemu-arg ARG     extra qemu argument (repeatable)
#
# Inside the guest the script runs as root with cwd $GUEST_OUT, the host's
# repository at its host path ($SND_VOIP_ROOT), and loopback up. The guest's
# console is printed to stdout; the harness exits with the script's status
# (124 on timeout, 125 when the guest never reported one).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

kernel="" kdir="" mode=hostroot timeout=600 out="" mem=1024 smp=2 append=""
modules=() bins=() qemu_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --kernel) kernel=$2; shift 2 ;;
        --kdir) kdir=$2; shift 2 ;;
        --module) modules+=("$2"); shift 2 ;;
        --mode) mode=$2; shift 2 ;;
        --bin) bins+=("$2"); shift 2 ;;
        --timeout) timeout=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --mem) mem=$2; shift 2 ;;
        --smp) smp=$2; shift 2 ;;
        --append) append=$2; shift 2 ;;
        --qemu-arg) qemu_args+=("$2"); shift 2 ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        --) shift; break ;;
        -*) echo "run-guest: unknown option $1" >&2; exit 2 ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || { echo "run-guest: no script given (see --help)" >&2; exit 2; }
script=$(readlink -f "$1"); shift
[ -f "$script" ] || { echo "run-guest: $script not found" >&2; exit 2; }

[ -n "$kdir" ] || kdir=$("$root/scripts/kernel.sh" --print-kdir)
[ -n "$kernel" ] || kernel=$("$root/scripts/kernel.sh" --print-kernel)
[ -f "$kernel" ] || { echo "run-guest: kernel image $kernel not found: run 'make kernel'" >&2; exit 2; }
if [ ${#modules[@]} -eq 0 ] && [ -f "$root/kmod-snd-voip/snd-voip.ko" ]; then
    modules=("$root/kmod-snd-voip/snd-voip.ko")
fi
case "$(file -b "$kernel")" in *ARM64*|*aarch64*) arch=arm64 ;; *) arch=x86_64 ;; esac

run=$(mktemp -d "${TMPDIR:-/tmp}/snd-voip-guest.XXXXXX")
qpid=""
cleanup() {
    [ -n "$qpid" ] && kill "$qpid" 2>/dev/null || true
    rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if [ -z "$out" ]; then out=$(mktemp -d "${TMPDIR:-/tmp}/snd-voip-out.XXXXXX"); fi
mkdir -p "$out"; out=$(readlink -f "$out")
rm -f "$out/.guest-status"

# Modules: the kernel's own (installed once per kernel build) plus ours.
kver=$(cat "$kdir/include/config/kernel.release")
staging="$kdir/.snd-voip-modules"
if [ ! -d "$staging/lib/modules/$kver" ] || [ "$kdir/.snd-voip-built" -nt "$staging/.done" ]; then
    rm -rf "$staging"
    make -s -C "$kdir" INSTALL_MOD_PATH="$staging" INSTALL_MOD_STRIP=1 modules_install >/dev/null
    touch "$staging/.done"
fi
mkdir -p "$run/modroot/lib/modules"
cp -a "$staging/lib/modules/$kver" "$run/modroot/lib/modules/"
mkdir -p "$run/modroot/lib/modules/$kver/extra"
for m in ${modules[@]+"${modules[@]}"}; do cp "$m" "$run/modroot/lib/modules/$kver/extra/"; done
depmod -b "$run/modroot" "$kver"

# The guest bind-mounts the module tree over the host's /lib/modules, which
# must exist as a mount point (containers often lack it).
if [ "$mode" = hostroot ] && [ ! -d /lib/modules ]; then
    mkdir -p /lib/modules 2>/dev/null || { echo "run-guest: /lib/modules is missing and cannot be created (run as root once)" >&2; exit 2; }
fi
cp "$script" "$run/script.sh"
printf '%q ' "$@" >"$run/args"
cat >"$run/env" <<ENV
export SND_VOIP_ROOT=$(printf %q "$root")
export SND_VOIP_REPO_MNT=$(printf %q "$root")
export GUEST_OUT=/tmp/out
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 TERM=dumb
ENV

# The guest's /init, run from a tiny initramfs in both modes.
mkdir -p "$run/initramfs"/{bin,proc,sys,dev,host,tmp,run,lib/modules}
cp "$(command -v busybox)" "$run/initramfs/bin/busybox"
cat >"$run/initramfs/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
say() { echo "snd-voip-guest: $*"; }
fail() { say "$*"; echo "@@SND_VOIP_STATUS 125"; reboot -f; }
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 run /run || fail "cannot mount the run share"
. /run/env
if [ -e /run/hostroot ]; then
    R=/host
    mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 hostroot /host || fail "cannot mount the host root"
else
    R=""
fi
mount -t proc proc $R/proc 2>/dev/null || true
mount -t sysfs sys $R/sys 2>/dev/null || true
mount -t devtmpfs dev $R/dev 2>/dev/null || true
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts
mount -t tmpfs shm $R/dev/shm
mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null || true
mount -t tmpfs tmp $R/tmp
mkdir -p $R/tmp/out $R/tmp/runshare
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out $R/tmp/out || fail "cannot mount the out share"
if [ -n "$R" ]; then
    mount --bind /run $R/tmp/runshare
    mount -t tmpfs run $R/run
    mount -t tmpfs root $R/root
    mount -t tmpfs vartmp $R/var/tmp
    mount -t tmpfs varlog $R/var/log
    mount --bind /run/modroot/lib/modules $R/lib/modules
    # The repository is shared on its own: it may live under a directory the
    # guest replaced with a tmpfs above (/tmp, /root, /run).
    mkdir -p "$R$SND_VOIP_REPO_MNT" 2>/dev/null
    mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 repo "$R$SND_VOIP_REPO_MNT" || fail "cannot mount the repository"
else
    mount --bind /run/modroot/lib/modules /lib/modules
    cp /run/script.sh /run/args /run/env /tmp/runshare/ 2>/dev/null || true
fi
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
hostname snd-voip-guest
say "running script"
echo "@@SND_VOIP_BEGIN"
chroot $R/ /bin/sh -c ". /tmp/runshare/env; cd /tmp/out; eval \"set -- \$(cat /tmp/runshare/args)\"; sh /tmp/runshare/script.sh \"\$@\""
rc=$?
echo "@@SND_VOIP_END"
echo "$rc" > $R/tmp/out/.guest-status
sync
echo "@@SND_VOIP_STATUS $rc"
umount $R/tmp/out 2>/dev/null
reboot -f
INIT
chmod +x "$run/initramfs/init"
if [ "$mode" = hostroot ]; then
    touch "$run/hostroot"
elif [ "$mode" = initramfs ]; then
    # Copy each binary with the shared libraries it needs, and ALSA's config.
    for b in ${bins[@]+"${bins[@]}"}; do
        b=$(command -v "$b" || echo "$b")
        for f in "$b" $(ldd "$b" 2>/dev/null | grep -o '/[^ ]*' || true); do
            mkdir -p "$run/initramfs$(dirname "$f")"
            cp -L "$f" "$run/initramfs$f"
        done
    done
    if [ -d /usr/share/alsa ]; then mkdir -p "$run/initramfs/usr/share"; cp -a /usr/share/alsa "$run/initramfs/usr/share/"; fi
    mkdir -p "$run/initramfs/tmp/runshare" "$run/initramfs/root"
else
    echo "run-guest: unknown mode $mode" >&2; exit 2
fi
(cd "$run/initramfs" && find . | cpio -o -H newc --quiet | gzip -1) >"$run/initramfs.cpio.gz"

if [ "$arch" = arm64 ]; then
    qemu=(qemu-system-aarch64 -M virt -cpu cortex-a57)
    console=ttyAMA0
else
    qemu=(qemu-system-x86_64 -cpu max)
    console=ttyS0
fi
qemu+=(-smp "$smp" -m "$mem" -nographic -no-reboot -monitor none -serial stdio
    -kernel "$kernel" -initrd "$run/initramfs.cpio.gz"
    -append "console=$console panic=-1 oops=panic loglevel=4 $append"
    -virtfs "local,path=$run,mount_tag=run,security_model=none,multidevs=remap"
    -virtfs "local,path=$out,mount_tag=out,security_model=none,multidevs=remap")
if [ "$mode" = hostroot ]; then
    qemu+=(-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap")
    qemu+=(-virtfs "local,path=$root,mount_tag=repo,security_model=none,readonly=on,multidevs=remap")
fi
qemu+=(${qemu_args[@]+"${qemu_args[@]}"})

set +e
timeout --foreground -k 5 "$timeout" "${qemu[@]}" </dev/null &
qpid=$!
wait "$qpid"
qrc=$?
qpid=""
set -e
status=125
if [ "$qrc" = 124 ]; then
    echo "run-guest: timed out after ${timeout}s" >&2
    status=124
elif [ -f "$out/.guest-status" ]; then
    status=$(cat "$out/.guest-status")
fi
echo "run-guest: guest output in $out, status $status" >&2
exit "$status"
