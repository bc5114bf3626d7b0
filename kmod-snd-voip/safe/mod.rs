// SPDX-License-Identifier: GPL-2.0
//! The safe layer: every call into the C kernel the driver makes goes
//! through a wrapper here, whose `// SAFETY:` comments say why the call is
//! sound and whose `# Invariants` say what the wrapper guarantees. The
//! driver files (`card.rs`, `cable.rs`, `rtos.rs`, `route.rs`,
//! `snd_voip_main.rs`) contain no `unsafe` and no raw bindings, as the
//! kernel's own Rust drivers do; the 6.12 kernel crate lacks these
//! abstractions (ALSA, hrtimer, platform driver, shared memory), so the
//! module brings its own, in the shape the later kernel crates use.
//!
//! | file | wraps |
//! |------|-------|
//! | `sync.rs` | `spinlock_t` with `spin_lock_irqsave` ([`sync::IrqSpinLock`]) |
//! | `hrtimer.rs` | `struct hrtimer` in its owner, `container_of` callback ([`hrtimer::HrTimer`]) |
//! | `device.rs` | `struct device`: name, OF properties, `memory-region`, `dev_*` logging, rate limits |
//! | `platform.rs` | `platform_driver`/`platform_device` registration, probe/remove, `dev_pm_ops` |
//! | `shmem.rs` | `memremap()` of the RTOS region, bounds-checked volatile access, barriers |
//! | `params.rs` | the module parameters (declared in the C shim) |
//! | `sound/card.rs` | `snd_card` owning the driver's pinned data |
//! | `sound/pcm.rs` | PCM ops, substreams, hw rules, buffers, the substream slot |
//! | `sound/control.rs` | controls and their change events (`snd_ctl_notify`) |
//! | `sound/info.rs` | /proc/asound text files |

pub(crate) mod device;
pub(crate) mod hrtimer;
pub(crate) mod params;
pub(crate) mod platform;
pub(crate) mod shmem;
pub(crate) mod sound;
pub(crate) mod sync;
