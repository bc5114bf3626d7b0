//! The media engine allocates nothing per packet in the steady state:
//! eight calls (both ends of each on one scheduler, the card's devices in
//! passthrough and in linear mode, RTCP reports included) run in virtual
//! time under a counting allocator that counts this thread only.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use voipbridge::media::sim::{EndSpec, Signal, Sim};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn counting() -> bool {
    COUNTING.try_with(|c| c.get()).unwrap_or(false)
}

// SAFETY: every call is forwarded unchanged to the system allocator, which
// upholds GlobalAlloc's contract; the counter is an atomic and the flag a
// const-initialised thread-local Cell (no allocation, no re-entrance).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: `ptr` came from System with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 30000 + 2 * i as u16))
}

#[test]
fn no_allocation_per_packet_in_the_steady_state() {
    for device_law in [Some(g711::Law::MuLaw), None] {
        let t0 = Instant::now();
        let mut sim = Sim::new(t0, Duration::from_millis(5));
        let mut ends = Vec::new();
        for k in 0..8 {
            let spec = EndSpec {
                signal: Signal::Sine(500.0 + 100.0 * k as f64),
                device_law,
                seconds: 25,
                ..EndSpec::default()
            };
            ends.push(sim.add_end(addr(2 * k), addr(2 * k + 1), &spec, k as u32 + 1));
            ends.push(sim.add_end(addr(2 * k + 1), addr(2 * k), &spec, k as u32 + 100));
        }
        // Warm up: buffers reach their size, the jitter buffers start.
        sim.run_until(t0 + Duration::from_secs(3));
        let before: u64 = ends.iter().map(|e| e.shared.stats().packets_sent).sum();
        let rtcp_before: u64 = ends.iter().map(|e| e.shared.stats().rtcp_sent).sum();
        ALLOCS.store(0, Ordering::Relaxed);
        COUNTING.with(|c| c.set(true));
        sim.run_until(t0 + Duration::from_secs(23));
        COUNTING.with(|c| c.set(false));
        let allocs = ALLOCS.load(Ordering::Relaxed);
        let sent: u64 = ends
            .iter()
            .map(|e| e.shared.stats().packets_sent)
            .sum::<u64>()
            - before;
        let rtcp: u64 = ends.iter().map(|e| e.shared.stats().rtcp_sent).sum::<u64>() - rtcp_before;
        assert!(sent >= 16 * 999, "{sent} packets");
        assert!(rtcp >= 16 * 2, "{rtcp} RTCP reports");
        assert_eq!(
            allocs, 0,
            "{allocs} allocations for {sent} RTP packets and {rtcp} RTCP reports ({device_law:?} devices)"
        );
        for e in &ends {
            let s = e.shared.stats();
            assert_eq!((s.lost, s.underruns, s.xruns), (0, 0, 0), "{s:?}");
        }
    }
}
