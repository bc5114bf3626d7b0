#!/usr/bin/env bash
# Boot a kernel in qemu (TCG), run a script inside it, and return the script's
# exit status and output. Shared by the card, bridge, RTOS-FIFO and demo tests.
#
# usage: tests/qemu/run-guest.sh [options] SCRIPT [ARGS...]
#
#   --kernel IMAGE     kernel image (default: `make -s print-kernel`)
#   --kdir DIR         kernel build directory for its modules (default: `make -s print-kdir`)
#   --module KO        extra module to install under /lib/modules (repeatable;
#                      default: snd-voip.ko built for the kernel by scripts/kmod.sh)
#   --no-module        install no module of ours
#   --bin-dir DIR      the test binaries (voipbridge, audiotest, pcmcheck...),
#                      shared read-only with the guest as $SND_VOIP_BIN
#                      (default: the host's $SND_VOIP_BIN for an x86_64
#                      kernel, none for arm64: pass a cross-built one)
#   --debug-kernel     the suite needs the debug kernel: fail unless the
#                      kernel has KASAN, lockdep (PROVE_LOCKING) and kmemleak
#   --mode MODE        hostroot (default): the guest runs the host's own root
#                      filesystem read-only over 9p (virtme-style), so every host
#                      binary (aplay, baresip, kamailio, voipbridge...) runs inside it;
#                      initramfs: a minimal busybox initramfs with only the
#                      binaries listed by --bin (and their libraries);
#                      rootdir: like hostroot, but the 9p root is --rootdir DIR
#                      (e.g. the arm64 userspace of scripts/arm64-rootfs.sh)
#   --rootdir DIR      root filesystem for --mode rootdir (shared read-only; the
#                      harness creates the repository's mount point in it)
#   --bin PATH         binary to copy into the initramfs (initramfs mode; repeatable;
#                      for an arm64 kernel it is looked up in the arm64 rootfs)
#   --timeout SECONDS  kill the guest after this long (default 600)
#   --out DIR          directory the guest sees read-write as $GUEST_OUT
#                      (default: a fresh temporary directory, printed at the end)
#   --mem MB           guest memory (default 1024)
#   --smp N            guest CPUs (default 2)
#   --append ARGS      extra kernel command line
#   --qemu-arg ARG     extra qemu argument (repeatable)
#   --region FILE      back the whole guest RAM with FILE (memory-backend-file,
#                      share=on), so a host process mapping FILE shares it with
#                      the guest: guest physical address RAM_BASE + x is file
#                      offset x (arm64 virt: RAM_BASE 0x40000000). Created and
#                      sized to --mem if missing, grown if smaller, never wiped.
#   --dtb FILE         device tree blob given to the kernel (qemu -dtb); it must
#                      come from the same machine options (dts/mkboard-dtb.sh)
#   --pm               shares that survive a system suspend in the guest
#                      (/sys/power/pm_test): each 9p share on its own PCIe root
#                      port with PM No_Soft_Reset set (x86_64: the q35 machine),
#                      so virtio-pci keeps its queues across suspend/resume
#                      (without it the device is reset and 9p hangs). Also on
#                      when SCRIPT has a line "# run-guest: --pm".
#
# For an arm64 kernel (detected from the image) the initramfs busybox, the
# initramfs binaries and their libraries come from scripts/arm64-rootfs.sh.
#
# Inside the guest the script runs as root with cwd $GUEST_OUT, the host's
# repository at its host path ($SND_VOIP_ROOT), and loopback up. The guest's
# console is printed to stdout; the harness exits with the script's status
# (124 on timeout, 125 when the guest never reported one).
#
# SND_VOIP_QEMU_LOCK=FILE: hold an flock on FILE while qemu runs (several
# people sharing one machine: one guest at a time; the wait is printed).
# Never set it when the caller already holds that lock itself.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

kernel="" kdir="" mode=hostroot timeout=600 out="" mem=1024 smp=2 append=""
rootdir="" region="" dtb="" pm="" no_module=0 bindir="" bindir_set=0 need_debug=0
modules=() bins=() qemu_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --kernel) kernel=$2; shift 2 ;;
        --kdir) kdir=$2; shift 2 ;;
        --module) modules+=("$2"); shift 2 ;;
        --no-module) no_module=1; shift ;;
        --bin-dir) bindir=$2; bindir_set=1; shift 2 ;;
        --debug-kernel) need_debug=1; shift ;;
        --mode) mode=$2; shift 2 ;;
        --bin) bins+=("$2"); shift 2 ;;
        --timeout) timeout=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --mem) mem=$2; shift 2 ;;
        --smp) smp=$2; shift 2 ;;
        --append) append=$2; shift 2 ;;
        --qemu-arg) qemu_args+=("$2"); shift 2 ;;
        --rootdir) rootdir=$2; shift 2 ;;
        --region) region=$2; shift 2 ;;
        --dtb) dtb=$2; shift 2 ;;
        --pm) pm=1; shift ;;
        -h|--help) sed -n '2,60p' "$0"; exit 0 ;;
        --) shift; break ;;
        -*) echo "run-guest: unknown option $1" >&2; exit 2 ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || { echo "run-guest: no script given (see --help)" >&2; exit 2; }
script=$(readlink -f "$1"); shift
[ -f "$script" ] || { echo "run-guest: $script not found" >&2; exit 2; }
grep -q '^# run-guest: --pm' "$script" && pm=1

[ -n "$kdir" ] || kdir=$("$root/scripts/kernel.sh" --print-kdir)
[ -n "$kernel" ] || kernel=$("$root/scripts/kernel.sh" --print-kernel)
[ -f "$kernel" ] || { echo "run-guest: kernel image $kernel not found: run 'make kernel'" >&2; exit 2; }
case "$(file -b "$kernel")" in *ARM64*|*aarch64*) arch=arm64 ;; *) arch=x86_64 ;; esac
# A debug-kernel suite on a kernel without the checkers would pass
# without checking anything: refuse it.
if [ "$need_debug" = 1 ]; then
    for opt in CONFIG_KASAN CONFIG_PROVE_LOCKING CONFIG_DEBUG_KMEMLEAK CONFIG_DEBUG_FS; do
        grep -q "^$opt=y" "$kdir/.config" || { echo "run-guest: this suite needs the debug kernel, and $kdir has no $opt=y (SND_VOIP_KERNEL=debug)" >&2; exit 2; }
    done
fi
# The default module: ours, built for this very kernel (scripts/kmod.sh).
if [ ${#modules[@]} -eq 0 ] && [ "$no_module" = 0 ]; then
    ko=$("$root/scripts/kmod.sh" "$kdir") || { echo "run-guest: the module build for $kdir failed" >&2; exit 2; }
    modules=("$ko")
fi
for m in ${modules[@]+"${modules[@]}"}; do
    case "$arch:$(file -b "$m")" in
        x86_64:*x86-64*|arm64:*aarch64*) ;;
        *) echo "run-guest: $m is not a module for this $arch kernel" >&2; exit 2 ;;
    esac
done
# The test binaries the guest runs (x86_64: the host's; arm64: cross-built ones).
if [ "$bindir_set" = 0 ] && [ "$arch" = x86_64 ]; then
    bindir=${SND_VOIP_BIN:-$(SND_VOIP_ROOT=$root "$root/scripts/cargo-ci.sh" print-bin)}
fi
if [ -n "$bindir" ]; then
    [ -d "$bindir" ] || { echo "run-guest: binary directory $bindir not found (make bridge)" >&2; exit 2; }
    bindir=$(readlink -f "$bindir")
fi
case "$mode" in
    hostroot|initramfs) [ -z "$rootdir" ] || { echo "run-guest: --rootdir needs --mode rootdir" >&2; exit 2; } ;;
    rootdir)
        [ -n "$rootdir" ] && { [ -L "$rootdir/bin/sh" ] || [ -f "$rootdir/bin/sh" ]; } || { echo "run-guest: --mode rootdir needs --rootdir DIR with a bin/sh" >&2; exit 2; }
        rootdir=$(readlink -f "$rootdir") ;;
    *) echo "run-guest: unknown mode $mode" >&2; exit 2 ;;
esac
[ -z "$dtb" ] || [ -f "$dtb" ] || { echo "run-guest: dtb $dtb not found" >&2; exit 2; }
# The userspace of a foreign architecture (busybox and --bin programs for the
# initramfs) comes from its Debian rootfs, never from the host.
if [ "$arch" = arm64 ] && [ "$(uname -m)" != aarch64 ]; then
    if [ -n "$rootdir" ]; then archroot=$rootdir; else archroot=$("$root/scripts/arm64-rootfs.sh"); fi
else
    archroot=""
fi

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
    # A cross-built tree needs its ARCH and LLVM's strip for foreign objects.
    kflags=()
    [ "$arch" = x86_64 ] || kflags=(ARCH="$arch" LLVM=1)
    make -s -C "$kdir" ${kflags[@]+"${kflags[@]}"} INSTALL_MOD_PATH="$staging" INSTALL_MOD_STRIP=1 modules_install >/dev/null
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
# The read-only 9p root of rootdir mode must hold the mount points the guest
# uses, including the repository's host path.
if [ "$mode" = rootdir ]; then
    for d in lib/modules proc sys dev tmp run root var/tmp var/log "${root#/}"; do
        mkdir -p "$rootdir/$d" 2>/dev/null || { echo "run-guest: cannot create $rootdir/$d" >&2; exit 2; }
    done
fi
cp "$script" "$run/script.sh"
printf '%q ' "$@" >"$run/args"
cat >"$run/env" <<ENV
export SND_VOIP_ROOT=$(printf %q "$root")
export SND_VOIP_REPO_MNT=$(printf %q "$root")
export GUEST_OUT=/tmp/out
export SND_VOIP_BIN=$([ -n "$bindir" ] && echo /tmp/snd-voip-bin)
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 TERM=dumb
ENV

# The guest's /init, run from a tiny initramfs in both modes.
mkdir -p "$run/initramfs"/{bin,proc,sys,dev,host,tmp,run,lib/modules}
if [ -n "$archroot" ]; then
    cp "$archroot/bin/busybox" "$run/initramfs/bin/busybox"
else
    cp "$(command -v busybox)" "$run/initramfs/bin/busybox"
fi
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
# debugfs (kmemleak lives there): a kernel that has it must mount it.
if grep -qw debugfs /proc/filesystems; then
    mount -t debugfs debugfs $R/sys/kernel/debug || fail "cannot mount debugfs"
fi
# kmemleak's own thread scans all of memory every 10 minutes, at a time no
# test chooses; on the emulated KASAN guest one scan takes the CPUs for
# seconds, and a stream that runs meanwhile overruns (a whole matrix batch
# failed so in CI). The suites scan when they check (check_kmemleak: two
# explicit scans), so the periodic one only adds noise: off.
if [ -w $R/sys/kernel/debug/kmemleak ]; then echo scan=off >$R/sys/kernel/debug/kmemleak; fi
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
    # guest replaced with a tmpfs above (/tmp, /root, /run). It is read-only
    # and the host changes nothing in it while the guest runs (results go to
    # the out share), so the guest may cache it: without cache=loose every
    # start of a test program (audiotest, pcmcheck, voipbridge) pages it in
    # over 9p again, seconds each in a starved emulated guest.
    mkdir -p "$R$SND_VOIP_REPO_MNT" 2>/dev/null
    mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 repo "$R$SND_VOIP_REPO_MNT" || fail "cannot mount the repository"
    if [ -n "$SND_VOIP_BIN" ]; then
        mkdir -p "$R$SND_VOIP_BIN"
        mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 bin "$R$SND_VOIP_BIN" || fail "cannot mount the test binaries"
    fi
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
# Copy a foreign-architecture program from $archroot with the libraries it
# needs (readelf: it cannot run here, so no ldd).
archcopy() {
    local f=$1 lib d
    [ -e "$run/initramfs$f" ] && return 0
    mkdir -p "$run/initramfs$(dirname "$f")"
    cp -L "$archroot$f" "$run/initramfs$f"
    local interp
    interp=$(readelf -l "$archroot$f" 2>/dev/null | sed -n 's/.*interpreter: \(.*\)\]/\1/p')
    [ -z "$interp" ] || archcopy "$interp"
    for lib in $(readelf -d "$archroot$f" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        for d in /lib/aarch64-linux-gnu /usr/lib/aarch64-linux-gnu /lib /usr/lib; do
            if [ -e "$archroot$d/$lib" ]; then archcopy "$d/$lib"; continue 2; fi
        done
        echo "run-guest: $lib (needed by $f) not found in $archroot" >&2; exit 2
    done
}
if [ "$mode" = hostroot ] || [ "$mode" = rootdir ]; then
    touch "$run/hostroot"
elif [ "$mode" = initramfs ] && [ -n "$archroot" ]; then
    for b in ${bins[@]+"${bins[@]}"}; do
        if [ "${b#/}" = "$b" ]; then
            for d in /usr/bin /bin /usr/sbin /sbin; do
                if [ -f "$archroot$d/$b" ]; then b=$d/$b; break; fi
            done
        fi
        [ -f "$archroot$b" ] || { echo "run-guest: $b not found in $archroot" >&2; exit 2; }
        archcopy "$b"
    done
    if [ -d "$archroot/usr/share/alsa" ]; then mkdir -p "$run/initramfs/usr/share"; cp -a "$archroot/usr/share/alsa" "$run/initramfs/usr/share/"; fi
    mkdir -p "$run/initramfs/tmp/runshare" "$run/initramfs/root"
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
if [ -n "$region" ]; then
    # Never truncate: a simulator may have written the ring headers already.
    [ -e "$region" ] || : >"$region"
    if [ "$(stat -c %s "$region")" -lt $((mem * 1024 * 1024)) ]; then truncate -s "${mem}M" "$region"; fi
    qemu+=(-object "memory-backend-file,id=ram,mem-path=$(readlink -f "$region"),size=${mem}M,share=on"
        -machine memory-backend=ram)
fi
[ -z "$dtb" ] || qemu+=(-dtb "$dtb")
[ -z "$pm" ] || [ "$arch" != x86_64 ] || qemu+=(-M q35)
qemu+=(-smp "$smp" -m "$mem" -nographic -no-reboot -monitor none -serial stdio
    -kernel "$kernel" -initrd "$run/initramfs.cpio.gz"
    -append "console=$console panic=-1 oops=panic loglevel=4 $append")
# share PATH TAG [ro]: a 9p share (with --pm: on its own PCIe root port, PM
# No_Soft_Reset, so it survives a system suspend of the guest).
nshare=0
share() {
    if [ -z "$pm" ]; then
        qemu+=(-virtfs "local,path=$1,mount_tag=$2,security_model=none,multidevs=remap${3:+,readonly=on}")
        return
    fi
    nshare=$((nshare + 1))
    qemu+=(-device "pcie-root-port,id=pmrp$nshare,bus=pcie.0,chassis=$nshare,slot=$nshare"
        -fsdev "local,id=pmfs$nshare,path=$1,security_model=none,multidevs=remap${3:+,readonly=on}"
        -device "virtio-9p-pci,fsdev=pmfs$nshare,mount_tag=$2,bus=pmrp$nshare,x-pcie-pm-no-soft-reset=on")
}
share "$run" run
share "$out" out
if [ "$mode" = hostroot ] || [ "$mode" = rootdir ]; then
    if [ "$mode" = rootdir ]; then hostroot=$rootdir; else hostroot=/; fi
    share "$hostroot" hostroot ro
    share "$root" repo ro
    [ -z "$bindir" ] || share "$bindir" bin ro
fi
qemu+=(${qemu_args[@]+"${qemu_args[@]}"})

if [ -n "${SND_VOIP_QEMU_LOCK:-}" ]; then
    exec 8>"$SND_VOIP_QEMU_LOCK"
    t_lock=$SECONDS
    flock 8
    [ $((SECONDS - t_lock)) -lt 2 ] || echo "run-guest: waited $((SECONDS - t_lock)) s for $SND_VOIP_QEMU_LOCK" >&2
fi
t_guest=$SECONDS
set +e
timeout --foreground -k 5 "$timeout" "${qemu[@]}" </dev/null &
qpid=$!
wait "$qpid"
qrc=$?
qpid=""
set -e
[ -z "${SND_VOIP_QEMU_LOCK:-}" ] || exec 8>&-
status=125
if [ "$qrc" = 124 ]; then
    echo "run-guest: timed out after ${timeout}s" >&2
    status=124
elif [ -f "$out/.guest-status" ]; then
    status=$(cat "$out/.guest-status")
fi
echo "run-guest: guest output in $out, status $status, $((SECONDS - t_guest)) s in qemu ($(basename "$kdir"))" >&2
exit "$status"
