//! rtos-sim: the RTOS core of an AMP board, simulated on the host, on the
//! shared-memory audio FIFO region of the emulated board (or any file).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use rtos_sim::echo::EchoArgs;
use rtos_sim::header::{self, Corruption, InitParams};
use rtos_sim::region::{Region, Which, DEFAULT_OFFSET, DEFAULT_SIZE};
use rtos_sim::run::{self, RunConfig};
use rtos_sim::source::SourceSpec;
use rtos_sim::writer::CounterStore;
use snd_voip_logic::format::Format;

const ABOUT: &str =
    "Simulate the RTOS core on the snd-voip audio FIFO (mic ring producer, speaker ring consumer)";

const LONG_ABOUT: &str = "\
Plays the M core's role on the shared-memory region the snd-voip driver
uses on AMP boards. The region holds two rings (protocol v1.0,
kmod-snd-voip/include/snd_voip_fifo.h): the microphone ring (RTOS -> Linux)
at region offset 0 and the speaker ring (Linux -> RTOS) right after it.

On the emulated arm64 board the guest RAM is a host file shared with qemu
(memory-backend-file,share=on); RAM starts at guest physical 0x40000000 and
the region at 0x5f000000, so the default window is file offset 0x1f000000,
size 0x10000. For tests any file of at least offset+size bytes works.

Initialise the rings before the guest loads the module, then run.";

const AFTER_HELP: &str = "\
Examples:
  rtos-sim init --region /tmp/ram.img
  rtos-sim run --region /tmp/ram.img --tone 1000 --ppm 300 --out spk.wav --seconds 20 &
  rtos-sim status --region /tmp/ram.img --json
  rtos-sim corrupt --region /tmp/ram.img --what read-beyond-write --ring speaker
  truncate -s 128K f.img && rtos-sim init --region f.img --offset 0x10000";

#[derive(Parser)]
#[command(name = "rtos-sim", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
struct RegionArgs {
    /// File holding the region (the guest RAM file, or a plain file).
    #[arg(long, value_name = "FILE")]
    region: PathBuf,
    /// Byte offset of the region in FILE (decimal or 0x hex).
    #[arg(long, value_name = "BYTES", default_value = "0x1f000000", value_parser = parse_u64)]
    offset: u64,
    /// Size of the region (decimal or 0x hex).
    #[arg(long, value_name = "BYTES", default_value = "0x10000", value_parser = parse_u64)]
    size: u64,
}

impl RegionArgs {
    fn open(&self) -> Result<Region> {
        let size = usize::try_from(self.size).context("--size too large")?;
        Region::open(&self.region, self.offset, size).with_context(|| {
            format!(
                "mapping {} at {:#x}, {:#x} bytes",
                self.region.display(),
                self.offset,
                self.size
            )
        })
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    #[value(name = "S16_LE")]
    S16Le,
    #[value(name = "MU_LAW")]
    MuLaw,
    #[value(name = "A_LAW")]
    ALaw,
}

#[derive(Clone, Copy, ValueEnum)]
enum RingArg {
    /// The microphone ring (RTOS -> Linux), at region offset 0.
    Mic,
    /// The speaker ring (Linux -> RTOS), after the microphone ring.
    Speaker,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write both ring headers (every field, then the magic): counters zero, states stopped.
    #[command(
        after_help = "Example:\n  rtos-sim init --region /tmp/ram.img --rate 16000 --format MU_LAW --period-frames 320"
    )]
    Init {
        #[command(flatten)]
        region: RegionArgs,
        /// Frames per second (8000, 16000, 32000, 44100, 48000).
        #[arg(long, default_value_t = 8000)]
        rate: u32,
        /// Channels (1 or 2).
        #[arg(long, default_value_t = 1)]
        channels: u16,
        /// Sample format.
        #[arg(long, value_enum, default_value = "S16_LE", ignore_case = true)]
        format: FormatArg,
        /// Data bytes of each ring (a power of two; both rings and their
        /// 256-byte headers must fit in the region).
        #[arg(long, default_value_t = 16384)]
        ring_bytes: u32,
        /// Frames per period (at most half the ring).
        #[arg(long, default_value_t = 160)]
        period_frames: u32,
        /// Start both counters of both rings here instead of 0 (decimal or
        /// 0x hex), e.g. 0xfffc1800 to cross the 2^32 carry 32 s into an
        /// 8 kHz run.
        #[arg(long, value_name = "FRAMES", default_value = "0", value_parser = parse_u64)]
        start_frames: u64,
        /// Minor protocol version to write (0: play a 1.0 RTOS, whose
        /// counters' high words Linux cross-checks; 1: the current one).
        #[arg(long, default_value_t = snd_voip_logic::fifo::VERSION_MINOR)]
        minor: u16,
    },
    /// Run the M core: feed the mic ring, drain the speaker ring, print a JSON summary.
    #[command(
        long_about = "\
Runs the M core in real time. The microphone ring is fed with a tone or a
looped WAV at the ring's rate times (1 + ppm/1e6), a period at a time,
paced by CLOCK_MONOTONIC (the frames due are computed from the elapsed
time, so there is no drift). --start-fill frames go in at once at start.
When the ring is full the frames are dropped; while Linux's consumer
state says it is running, each such event counts as an overrun (header
and summary).

The speaker ring is drained at the same rate once it first holds two
periods; frames missing when due (ring empty) are written to the WAV as
silence, and count as an underrun while Linux's producer state says it
is running.

Stops after --seconds or on SIGTERM/SIGINT, sets both states to stopped,
finalises the WAV and prints one JSON line: frames produced, dropped and
consumed, overruns, underruns, silence frames, min/max fill, ppm.

With --echo the microphone also hears the speaker: what the speaker ring
played, through a room impulse response (generated from --echo-seed with
--echo-rt60, or --echo-rir), --echo-delay ms later and --echo-erl dB down,
plus white noise (--echo-noise). --echo-drift-ppm runs the speaker codec
that far off the microphone's clock (the speaker ring is paced by it), so
the echo path drifts; --echo-delay-step changes the delay mid-run. The
summary then has an \"echo\" object (levels, late and clipped samples).
--silent leaves only the echo (and noise) on the microphone.",
        after_help = "\
Examples:
  rtos-sim run --region /tmp/ram.img --tone 1000 --ppm 300 --out spk.wav --seconds 20
  rtos-sim run --region /tmp/ram.img --wav speech-8k.wav --ppm -300 --out spk.wav &
  kill -TERM $!   # stops cleanly, summary on stdout
  # hands-free echo: the speaker comes back 60 ms later, 10 dB down, through a
  # 100 ms room, the speaker clock 300 ppm off; the delay grows 40 ms at 10 s
  rtos-sim run --region /tmp/ram.img --silent --echo --echo-delay 60 --echo-erl 10 \\
      --echo-rt60 100 --echo-drift-ppm 300 --echo-delay-step 40@10"
    )]
    Run {
        #[command(flatten)]
        region: RegionArgs,
        /// Microphone tone frequency in Hz (default 1000 unless --wav or --silent).
        #[arg(long, value_name = "HZ", conflicts_with_all = ["wav", "silent"])]
        tone: Option<f64>,
        /// The room is silent: the microphone hears only the echo (with --echo).
        #[arg(long, conflicts_with = "wav")]
        silent: bool,
        /// Tone peak level in dBFS.
        #[arg(long, value_name = "DBFS", default_value_t = -6.0, allow_negative_numbers = true)]
        level: f64,
        /// Play this WAV (16/8-bit PCM, A-law, mu-law at the ring's rate) in a loop instead of a tone.
        #[arg(long, value_name = "FILE")]
        wav: Option<PathBuf>,
        /// Clock offset of the simulated codec in parts per million (e.g. 300 or -300).
        #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
        ppm: f64,
        /// Frames written into the mic ring at once at start [default: 2 periods].
        #[arg(long, value_name = "FRAMES")]
        start_fill: Option<u64>,
        /// Write the speaker ring's audio to this WAV (in the ring's format).
        #[arg(long, value_name = "FILE.wav")]
        out: Option<PathBuf>,
        /// Stop after this many seconds [default: until SIGTERM/SIGINT].
        #[arg(long, value_name = "N")]
        seconds: Option<f64>,
        /// Play a 32-bit core: publish each counter as two 32-bit stores,
        /// the low word then, US microseconds later, the high word (so
        /// Linux often reads between them).
        #[arg(long, value_name = "US")]
        split_counters_us: Option<u64>,
        #[command(flatten)]
        echo: Box<EchoArgs>,
    },
    /// Print both headers decoded and validated, fill levels, states, counters.
    #[command(
        after_help = "Example:\n  rtos-sim status --region /tmp/ram.img --json | jq .mic.fill_frames"
    )]
    Status {
        #[command(flatten)]
        region: RegionArgs,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Corrupt one ring's header in a way the kernel must refuse.
    #[command(after_help = "\
Kinds and the error snd_voip_logic::fifo reports:
  bad-magic          magic 0xdeadbeef                 BadMagic
  bad-version        major version 2                  BadVersion
  oversized-ring     ring_bytes beyond the region     BadRingSize
  read-beyond-write  read_frames = write_frames + 1   BadIndices (Ring::fill)
  fill-beyond-ring   write_frames = read_frames + capacity + 1   BadIndices
  bad-rate           rate 12345                       BadFormat
  bad-period         period_frames 0                  BadPeriod

Example:
  rtos-sim corrupt --region /tmp/ram.img --what bad-magic
  rtos-sim init --region /tmp/ram.img     # repairs it")]
    Corrupt {
        #[command(flatten)]
        region: RegionArgs,
        /// What to corrupt.
        #[arg(long, value_enum)]
        what: Corruption,
        /// Which ring (the speaker ring is found through a valid mic ring).
        #[arg(long, value_enum, default_value = "mic")]
        ring: RingArg,
    },
}

fn parse_u64(s: &str) -> Result<u64, String> {
    let t = s.trim().replace('_', "");
    let r = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => t.parse(),
    };
    r.map_err(|e| format!("'{s}': {e} (decimal or 0x hex)"))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    debug_assert_eq!(DEFAULT_OFFSET, 0x1f00_0000);
    debug_assert_eq!(DEFAULT_SIZE, 0x1_0000);
    match cli.cmd {
        Cmd::Init {
            region,
            rate,
            channels,
            format,
            ring_bytes,
            period_frames,
            start_frames,
            minor,
        } => {
            let r = region.open()?;
            let p = InitParams {
                rate,
                channels,
                format: match format {
                    FormatArg::S16Le => Format::S16Le,
                    FormatArg::MuLaw => Format::MuLaw,
                    FormatArg::ALaw => Format::ALaw,
                },
                ring_bytes,
                period_frames,
                start_frames,
                minor,
            };
            let (mic, spk) = header::init(&r, &p).context("init refused")?;
            println!(
                "mic ring at 0x0, speaker ring at {:#x}: {} Hz, {} ch, {}, {} bytes ({} frames) each, period {}, version 1.{}, counters from {}",
                snd_voip_logic::fifo::second_ring_offset(&mic),
                rate,
                channels,
                p.format.name(),
                ring_bytes,
                spk.capacity(),
                period_frames,
                minor,
                start_frames
            );
        }
        Cmd::Run {
            region,
            tone,
            level,
            wav,
            ppm,
            start_fill,
            out,
            seconds,
            split_counters_us,
            silent,
            echo,
        } => {
            let echo = echo.config()?;
            let r = region.open()?;
            let source = match wav {
                Some(p) => SourceSpec::Wav(p),
                None if silent => SourceSpec::Silence,
                None => SourceSpec::Tone {
                    hz: tone.unwrap_or(1000.0),
                    dbfs: level,
                },
            };
            let stop = Arc::new(AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
                signal_hook::flag::register(sig, Arc::clone(&stop))
                    .context("installing the signal handler")?;
            }
            let cfg = RunConfig {
                source,
                ppm,
                seconds,
                start_fill,
                out,
                store: split_counters_us.map_or(CounterStore::Atomic64, CounterStore::split32),
                echo,
            };
            let summary = run::run(&r, &cfg, &stop)?;
            println!("{}", serde_json::to_string(&summary)?);
        }
        Cmd::Status { region, json } => {
            let r = region.open()?;
            let s = header::status(&r);
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                println!("{s}");
            }
        }
        Cmd::Corrupt { region, what, ring } => {
            let r = region.open()?;
            let which = match ring {
                RingArg::Mic => Which::Mic,
                RingArg::Speaker => Which::Speaker,
            };
            header::corrupt(&r, which, what)?;
            let s = header::ring_status(&r, which, r.ring_offset(which).unwrap_or(0));
            match &s.error {
                Some(e) => println!("{} ring corrupted ({what:?}): {e}", which.name()),
                None => bail!("{} ring still validates after {what:?}", which.name()),
            }
        }
    }
    Ok(())
}
