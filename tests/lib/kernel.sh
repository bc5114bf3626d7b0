# Which kernel a guest script runs on (sourced; POSIX sh, busybox and dash).

# debug_kernel: true when the guest booted the debug (test) kernel, whose
# KASAN, lockdep and kmemleak slow every syscall of the emulated guest:
# the demos then show timing figures instead of judging them. KASAN's boot
# line is the mark (every debug config has it, no production one does).
debug_kernel() { dmesg | grep -q "KernelAddressSanitizer initialized"; }

# debug_checkers: the debug kernel with all three of its checkers running.
# The card and RTOS suites check it first: a debug suite on a kernel
# without KASAN, lockdep or kmemleak would pass without checking anything.
debug_checkers() { debug_kernel && test -e /proc/lockdep && test -e /sys/kernel/debug/kmemleak; }
