//! The engine thread's scheduling policy (`[audio] realtime_priority`): a
//! small safe wrapper over sched_setscheduler(2), the only raw call it
//! needs. No crate fits better: `thread-priority` wraps the same call with
//! a cross-platform layer and more dependencies than this file has lines.

use std::io;

/// Sets the calling thread's policy: SCHED_FIFO at `priority` (1..=99),
/// or SCHED_OTHER (nice unchanged) with 0. SCHED_RESET_ON_FORK is set with
/// SCHED_FIFO, so nothing the thread starts inherits the real-time policy.
/// Errors: EPERM without CAP_SYS_NICE or an RLIMIT_RTPRIO of `priority`;
/// EINVAL for a priority above 99.
pub fn set_current_thread_fifo(priority: u8) -> io::Result<()> {
    let (policy, prio) = if priority == 0 {
        (libc::SCHED_OTHER, 0)
    } else {
        (
            libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK,
            i32::from(priority),
        )
    };
    let param = libc::sched_param {
        sched_priority: prio,
    };
    // SAFETY: pid 0 is the calling thread (Linux applies the policy per
    // thread), which is alive for the call; `param` is an initialised
    // sched_param on this stack frame that the kernel only reads.
    let r = unsafe { libc::sched_setscheduler(0, policy, &param) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The calling thread's policy and priority (SCHED_RESET_ON_FORK masked
/// off), e.g. `(libc::SCHED_FIFO, 10)`.
pub fn current_thread_policy() -> io::Result<(i32, i32)> {
    // SAFETY: pid 0 is the calling thread; no memory is passed.
    let policy = unsafe { libc::sched_getscheduler(0) };
    if policy < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; `param` is a valid, writable
    // sched_param on this stack frame for the kernel to fill.
    let r = unsafe { libc::sched_getparam(0, &mut param) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((policy & !libc::SCHED_RESET_ON_FORK, param.sched_priority))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each case runs on a thread of its own: the test harness's threads
    // keep their policy.
    fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(f).join().expect("thread")
    }

    #[test]
    fn normal_scheduling_is_always_allowed() {
        let r = on_thread(|| (set_current_thread_fifo(0), current_thread_policy()));
        assert!(r.0.is_ok());
        assert_eq!(r.1.expect("policy"), (libc::SCHED_OTHER, 0));
    }

    #[test]
    fn fifo_is_taken_and_given_back_or_refused_with_eperm() {
        let (set, during, back, after) = on_thread(|| {
            let set = set_current_thread_fifo(7);
            let during = current_thread_policy();
            let back = set_current_thread_fifo(0);
            (set, during, back, current_thread_policy())
        });
        match set {
            // Root or CAP_SYS_NICE (make test runs as root).
            Ok(()) => {
                assert_eq!(during.expect("policy"), (libc::SCHED_FIFO, 7));
                assert!(back.is_ok());
                assert_eq!(after.expect("policy"), (libc::SCHED_OTHER, 0));
            }
            // An unprivileged user without RLIMIT_RTPRIO.
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}");
                assert_eq!(during.expect("policy"), (libc::SCHED_OTHER, 0));
            }
        }
    }

    #[test]
    fn a_priority_above_99_is_refused() {
        let r = on_thread(|| (set_current_thread_fifo(100), current_thread_policy()));
        assert!(r.0.is_err());
        assert_eq!(r.1.expect("policy").0, libc::SCHED_OTHER);
    }
}
