# Sourced by the benchmarks that boot the production kernel (kernel.sh,
# calls-guest.sh). bench_prod_kernel WHAT [HINT]: sets kdir to the build
# directory scripts/kernel.sh names and acct to its irq/softirq time
# accounting ("tick-sampled" or "precise (IRQ_TIME_ACCOUNTING)"); exits 2
# when that kernel is not built (HINT follows the 'make kernel-prod'
# advice) or has KASAN, lockdep or kmemleak on (WHAT names the bench).
bench_prod_kernel() {
    kdir=$("$root/scripts/kernel.sh" --print-kdir)
    [ -f "$kdir/.snd-voip-built" ] || { echo "bench: $kdir is not built: run 'make kernel-prod'${2:-}" >&2; exit 2; }
    for opt in CONFIG_KASAN CONFIG_PROVE_LOCKING CONFIG_DEBUG_KMEMLEAK; do
        if grep -q "^$opt=y" "$kdir/.config"; then
            echo "bench: $kdir has $opt=y: $1 on the production kernel (SND_VOIP_KERNEL=prod)" >&2; exit 2
        fi
    done
    acct=tick-sampled
    if grep -q "^CONFIG_IRQ_TIME_ACCOUNTING=y" "$kdir/.config"; then acct="precise (IRQ_TIME_ACCOUNTING)"; fi
}
