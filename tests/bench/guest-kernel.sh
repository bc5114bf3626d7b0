# Guest half of tests/bench/kernel.sh (sourced by run-guest.sh's guest shell,
# production kernel): one capture stream at a time on the bridge end of a
# snd-voip cable, on snd-aloop's and on snd-dummy's, at 8 kHz/20 ms and
# 48 kHz/10 ms, in rounds; an idle window first as the baseline. Then short
# windows at both rates, each a new stream start, to show how the tick-sampled softirq
# figure depends on the timer's phase (kernel.sh explains it). Figures go
# to ./results ($GUEST_OUT), not the console, where kernel messages could
# interleave with them.
PC=$SND_VOIP_BIN/pcmcheck
# w TAG ARGS...: one pcmcheck wakeups window, its line tagged TAG, or a
# "failed," line with pcmcheck's error
w() {
    tag=$1; shift
    if $PC wakeups "$@" >w.txt 2>&1; then
        grep -a "^wakeups," w.txt | sed "s/^wakeups,/$tag/" >>results
    else
        echo "failed, $*: $(tail -n 1 w.txt)" >>results
    fi
}
S=${BENCH_KERNEL_SECONDS:-10}
modprobe snd-voip || exit 1
modprobe snd-aloop pcm_substreams=1 || exit 1
modprobe snd-dummy pcm_substreams=1 || exit 1
devs="hw:VoIP,1,0 hw:Loopback,1,0 hw:Dummy,0,0"
echo "bench-kernel: $(uname -r), $(nproc) CPUs, USER_HZ $(getconf CLK_TCK), clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)" >>results
w "wakeups," idle 8000 160 "$S"
for round in 1 2; do
    for cfg in "8000 160" "48000 480"; do
        for dev in $devs; do
            w "wakeups, round=$round" $dev $cfg "$S"
        done
    done
done
w "wakeups," idle 8000 160 "$S"
for cfg in "8000 160" "48000 480"; do
    for i in 1 2 3 4 5 6 7 8; do
        for dev in $devs; do
            w "phase, start=$i" $dev $cfg 3
        done
    done
done
# With the argument "trace" (tests/bench/kernel.sh --trace: a production
# kernel built with board-configs/common/trace.config), one more 5 s window
# per module and configuration with the timer and softirq tracepoints on,
# each one's trace saved as trace-N.txt for the host to time every hrtimer
# callback and softirq run.
if [ "${1:-}" = trace ]; then
    T=/sys/kernel/tracing
    mountpoint -q $T || mount -t tracefs nodev $T
    if [ -d $T/events/timer/hrtimer_expire_entry ]; then
        echo 16384 >$T/buffer_size_kb
        n=0
        # 48 kHz four times (each start draws a new phase against the
        # tick), 8 kHz once; the wake-up, IPI and interrupt events show
        # what a slow callback waits on.
        for cfg in "48000 480" "48000 480" "48000 480" "48000 480" "8000 160"; do
            for dev in $devs; do
                echo 0 >$T/tracing_on
                echo >$T/trace
                for e in timer/hrtimer_expire_entry timer/hrtimer_expire_exit irq/softirq_entry irq/softirq_exit \
                    sched/sched_waking sched/sched_wakeup sched/sched_switch ipi/ipi_send_cpu ipi/ipi_send_cpumask \
                    irq_vectors/local_timer_entry irq_vectors/local_timer_exit irq_vectors/call_function_single_entry \
                    irq_vectors/reschedule_entry irq/irq_handler_entry; do
                    [ -d $T/events/$e ] && echo 1 >$T/events/$e/enable
                done
                echo 1 >$T/tracing_on
                w "traced, trace=$n" $dev $cfg 5
                echo 0 >$T/tracing_on
                cat $T/trace >trace-$n.txt
                n=$((n + 1))
            done
        done
    else
        echo "failed, tracing: this kernel has no timer tracepoints (build it with trace.config)" >>results
    fi
fi
