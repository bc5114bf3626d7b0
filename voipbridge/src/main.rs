//! voipbridge command line.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use voipbridge::agent::{self, Request};
use voipbridge::config::Config;

/// A SIP phone for boards without one: bridges the snd-voip card's bridge side
/// (hw:VoIP,1,n) to RTP calls.
///
/// `voipbridge run` is the daemon; the other subcommands talk to it over its
/// control socket (JSON lines, mode 0600), the way linphonecsh drives linphonec.
#[derive(Parser, Debug)]
#[command(version, about, long_about, after_long_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

const EXAMPLES: &str = "\
EXAMPLES:
  voipbridge run --config /etc/voipbridge.toml
  voipbridge call sip:alice@192.0.2.10 --config /etc/voipbridge.toml
  voipbridge status --json --config /etc/voipbridge.toml

EXIT STATUS:
  0 success; 1 an error (bad configuration, daemon unreachable, request refused).

The configuration keys are documented in README.md (section \"Bridge configuration\").";

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the agent in the foreground: register, answer and place calls.
    ///
    /// Only trusted calls ring: those the registrar or outbound proxy routes
    /// to us, and callers on [call] allow (user@host, matched exactly);
    /// everyone else gets 403 ([call] stealth: nothing). [call] accept =
    /// "any" admits anyone (dangerous: README, "Security"). Admitted calls
    /// are answered per [call] auto_answer and given up after [call]
    /// ring_timeout_s (480). Host names (registrar, outbound proxy, call
    /// targets) are resolved in the background.
    ///
    /// Logs go to stderr, at info unless RUST_LOG says otherwise: a level
    /// (error, warn, info, debug, trace), optionally followed by
    /// TARGET=LEVEL pairs, comma-separated (e.g.
    /// RUST_LOG=info,voipbridge::media=debug). SIGTERM or SIGINT
    /// un-registers, hangs up every call and exits 0.
    Run {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Call a SIP URI (e.g. sip:alice@127.0.0.1:5080); prints the Call-ID.
    ///
    /// The INVITE goes to [account] outbound_proxy, else to the registrar,
    /// else to the URI's host (a name is resolved first). Fails at once when
    /// the call cannot be placed (every substream busy, not a SIP URI); its
    /// progress is in `status`. A callee may ring for 3 minutes (or [call]
    /// ring_timeout_s if longer) before the call is cancelled.
    Call {
        /// Who to call.
        uri: String,
        /// Configuration file (to find the control socket).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Answer a ringing call (the oldest unless --call).
    ///
    /// Only calls the answer policy admitted ring (with auto_answer = false
    /// they wait for this command, at most [call] ring_timeout_s).
    Answer {
        /// Call-ID.
        #[arg(long)]
        call: Option<String>,
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Hang up a call (every call unless --call).
    Hangup {
        /// Call-ID.
        #[arg(long)]
        call: Option<String>,
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Send DTMF digits (RFC 4733) on a call.
    Dtmf {
        /// Digits: 0-9 * # A-D.
        digits: String,
        /// Call-ID.
        #[arg(long)]
        call: Option<String>,
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Put a call on hold (re-INVITE with sendonly).
    Hold {
        /// Call-ID.
        #[arg(long)]
        call: Option<String>,
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Resume a held call.
    Resume {
        /// Call-ID.
        #[arg(long)]
        call: Option<String>,
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Ban a source: its datagrams are dropped and its connections refused.
    ///
    /// An IPv4 address, or an IPv6 address (its whole /64 is banned). The
    /// registrar, the outbound proxy and `[ban] exempt` addresses cannot be
    /// banned. `voipbridge status` lists the bans.
    Ban {
        /// IP address.
        addr: String,
        /// Seconds (default: `[ban] ban_time_s`).
        #[arg(long)]
        seconds: Option<u64>,
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Lift a ban.
    Unban {
        /// IP address.
        addr: String,
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Show registration, calls, codecs, RTP counters, the transport and bans.
    ///
    /// Per call, two latency lines: `latency:` is a snapshot of each
    /// buffer (capture device, jitter buffer and playout queue, playback
    /// device); `latency (1 s mean):` is each one averaged over the last
    /// whole second, the time a sample waits there (`-` in a call's first
    /// second). For the first sample of a packet, out = capture mean + half
    /// a packet, in = queue mean - half a packet + playback mean.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("voipbridge: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    init_logging();
    let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
    rt.block_on(async_main(cli))
}

/// Logs to stderr, filtered by `RUST_LOG` (`info` when unset): a default
/// level and `target=level` pairs, e.g. `info,voipbridge::dsp=trace`.
/// `tracing_subscriber`'s `Targets` filter reads that syntax without the
/// regex engine `EnvFilter` links (span and field filters, which nothing
/// here documents, are not supported); a value it cannot read is
/// reported and logging stays at `info`.
fn init_logging() {
    use std::io::IsTerminal;
    use tracing_subscriber::{filter::Targets, fmt, prelude::*};
    let info = || Targets::new().with_default(tracing::Level::INFO);
    let (filter, refused) = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => match v.parse::<Targets>() {
            Ok(t) => (t, None),
            Err(e) => (info(), Some((v, e))),
        },
        _ => (info(), None),
    };
    tracing_subscriber::registry()
        .with(
            fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .with(filter)
        .init();
    if let Some((v, e)) = refused {
        tracing::warn!("RUST_LOG={v:?} not understood ({e}): logging at info");
    }
}

async fn async_main(cli: Cli) -> Result<()> {
    let (config, req, json) = match cli.cmd {
        Cmd::Run { config } => {
            let cfg = Config::load(&config)?;
            let settings = cfg.settings(&config)?;
            let shutdown = async {
                use tokio::signal::unix::{signal, SignalKind};
                match (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                ) {
                    (Ok(mut t), Ok(mut i)) => {
                        tokio::select! { _ = t.recv() => {}, _ = i.recv() => {} }
                    }
                    _ => std::future::pending::<()>().await,
                }
            };
            agent::run(settings, shutdown).await?;
            return Ok(());
        }
        Cmd::Call { uri, config } => (config, Request::Call { uri }, false),
        Cmd::Answer { call, config } => (config, Request::Answer { call }, false),
        Cmd::Hangup { call, config } => (config, Request::Hangup { call }, false),
        Cmd::Dtmf {
            digits,
            call,
            config,
        } => (config, Request::Dtmf { digits, call }, false),
        Cmd::Hold { call, config } => (config, Request::Hold { on: true, call }, false),
        Cmd::Resume { call, config } => (config, Request::Hold { on: false, call }, false),
        Cmd::Status { json, config } => (config, Request::Status, json),
        Cmd::Ban {
            addr,
            seconds,
            config,
        } => (config, Request::Ban { addr, seconds }, false),
        Cmd::Unban { addr, config } => (config, Request::Unban { addr }, false),
    };
    let socket = Config::socket_of(&config)?;
    let answer = agent::request(&socket, &req).await.map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
            "the control socket admits root, the daemon's user and [control] group only"
        } else {
            "is `voipbridge run` running?"
        };
        anyhow::anyhow!(
            "cannot reach voipbridge at {} ({hint}): {e}",
            socket.display()
        )
    })?;
    if answer.get("ok").and_then(|v| v.as_bool()) != Some(true) {
        bail!(
            "{}",
            answer
                .get("error")
                .and_then(|e| e.as_str())
                .unwrap_or("request failed")
        );
    }
    // The answer is printed in one write, and a reader that went away
    // (`voipbridge status | grep -q ...`, `| head`) ends the command
    // quietly instead of a panic in println!.
    let mut out = String::new();
    if let Some(b) = answer.get("banned").and_then(|b| b.as_str()) {
        outln!(out, "banned {b} for {} s", answer["seconds"]);
    }
    if let Some(id) = answer.get("call").and_then(|c| c.as_str()) {
        outln!(out, "{id}");
    }
    if let Some(st) = answer.get("status") {
        if json {
            outln!(out, "{st}");
        } else {
            print_status(&mut out, st);
        }
    }
    write_stdout(&out)
}

fn print_status(out: &mut String, st: &serde_json::Value) {
    outln!(
        out,
        "registration: {}",
        st["registration"].as_str().unwrap_or("?")
    );
    let t = &st["transport"];
    if t.is_object() {
        let listening = if t["listening"].as_bool() == Some(true) {
            "listening"
        } else {
            "not listening (no [tls] cert_file)"
        };
        outln!(
            out,
            "transport: {} {} {listening}{}",
            t["transport"].as_str().unwrap_or("?").to_uppercase(),
            t["listen"].as_str().unwrap_or("?"),
            t["tls_trust"]
                .as_str()
                .map(|s| format!(", servers verified against {s}"))
                .unwrap_or_default()
        );
        outln!(
        out,
            "  connections in {} out {}; messages {} shed {} banned {}; refused connections {} idle-closed {} TLS failures {} slow readers {}",
            t["connections_in"], t["connections_out"], t["received"], t["shed"], t["banned_drops"],
            t["refused_connections"], t["idle_closed"], t["tls_failures"], t["slow_readers"]
        );
        let media = match (st["srtp"].as_str(), st["sdes_allowed"].as_bool()) {
            (Some("off") | None, _) => "plain RTP ([media] srtp = off)".to_string(),
            (Some(m), Some(true)) => format!(
                "SRTP {m} (SDES keys over {})",
                if t["transport"] == "tls" {
                    "TLS"
                } else {
                    "unencrypted signalling: srtp_over_udp"
                }
            ),
            (Some(m), _) => {
                format!("plain RTP (SRTP {m}, but keys are never sent over unencrypted signalling)")
            }
        };
        outln!(out, "media: {media}");
        let bans = t["bans"].as_array().cloned().unwrap_or_default();
        outln!(
            out,
            "bans: {} now, {} since start",
            bans.len(),
            t["bans_total"]
        );
        for b in bans {
            outln!(
                out,
                "  {} ({}) {} s left",
                b["source"].as_str().unwrap_or("?"),
                b["reason"].as_str().unwrap_or("?").replace('_', " "),
                b["remaining_s"]
            );
        }
    }
    if let Some(t) = st.get("transactions").filter(|t| t.is_object()) {
        outln!(
            out,
            "transactions: {} server, {} client, {} evicted, {} answered statelessly",
            t["server"],
            t["client"],
            t["evicted"],
            t["stateless"]
        );
    }
    let calls = st["calls"].as_array().cloned().unwrap_or_default();
    if calls.is_empty() {
        outln!(out, "no calls");
    }
    for c in calls {
        outln!(
            out,
            "call {} [{}] {} {} substream {} codec {} duration {:.1} s",
            c["call_id"].as_str().unwrap_or("?"),
            c["state"].as_str().unwrap_or("?"),
            c["direction"].as_str().unwrap_or("?"),
            c["peer"].as_str().unwrap_or("?"),
            c["slot"],
            c["codec"].as_str().unwrap_or("-"),
            c["duration_s"].as_f64().unwrap_or(0.0)
        );
        if let Some(r) = c.get("rtp").filter(|r| !r.is_null()) {
            let ms = |k: &str| {
                r[k].as_f64()
                    .map_or("-".to_string(), |v| format!("{v:.1} ms"))
            };
            outln!(
        out,
                "  rtp: sent {} received {} lost {} concealed {} late {} jitter {} xruns {} dtmf '{}'",
                r["packets_sent"],
                r["packets_received"],
                r["lost"],
                r["concealed"],
                r["late"],
                ms("jitter_ms"),
                r["xruns"],
                r["dtmf_received"].as_str().unwrap_or("")
            );
            outln!(
        out,
                "  rtcp: sent {} received {} rtt {} far end lost {:.1} % far end jitter {} playout queue {} ms",
                r["rtcp_sent"],
                r["rtcp_received"],
                ms("rtt_ms"),
                r["remote_fraction_lost"].as_f64().unwrap_or(0.0) * 100.0,
                ms("remote_jitter_ms"),
                r["queued_ms"]
            );
            let on = |k: &str| {
                if r[k].as_bool() == Some(true) {
                    " passthrough"
                } else {
                    ""
                }
            };
            outln!(
        out,
                "  latency: out: capture device {} (period {}); in: jitter buffer {} ms (target {} ms) + playback device {} (target {})",
                ms("capture_delay_ms"),
                ms("device_period_ms"),
                r["queued_ms"],
                r["jitter_buffer_ms"],
                ms("playback_delay_ms"),
                ms("device_buffer_ms"),
            );
            // The same legs averaged over the last second (what a sample
            // waits; the line above is a snapshot on each buffer's sawtooth).
            outln!(
                out,
                "  latency (1 s mean): out: capture device {} (period {}); in: jitter buffer {} (target {} ms) + playback device {} (target {})",
                ms("capture_delay_mean_ms"),
                ms("device_period_ms"),
                ms("queued_mean_ms"),
                r["jitter_buffer_ms"],
                ms("playback_delay_mean_ms"),
                ms("device_buffer_ms"),
            );
            outln!(
                out,
                "  devices: capture {}{}, playback {}{}; media {}{}",
                r["capture_format"].as_str().unwrap_or("-"),
                on("capture_passthrough"),
                r["playback_format"].as_str().unwrap_or("-"),
                on("playback_passthrough"),
                r["transform"].as_str().unwrap_or("plain RTP"),
                if r["latch"].as_bool() == Some(true) {
                    ", latched"
                } else {
                    ""
                },
            );
            for line in processing_lines(r) {
                outln!(out, "  {line}");
            }
        }
    }
}

/// Appends one line to a command's output (`writeln!` into a `String`
/// cannot fail).
macro_rules! outln {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}
use outln;

/// Writes a command's output to stdout. A closed pipe (the reader only
/// wanted the first lines) is not an error: the command succeeded.
fn write_stdout(out: &str) -> Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("writing to stdout"))
        }
        _ => Ok(()),
    }
}

/// `status` lines for a call's capture processors (`processing`,
/// `processing_stats`): the echo canceller's in words, others as figures.
fn processing_lines(r: &serde_json::Value) -> Vec<String> {
    let figs = &r["processing_stats"];
    let mut lines = Vec::new();
    for name in r["processing"].as_array().into_iter().flatten() {
        let Some(name) = name.as_str() else { continue };
        let f = |k: &str| figs[format!("{name}.{k}")].as_f64();
        if name.starts_with("aec3") {
            let db = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} dB"));
            let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0} ms"));
            lines.push(format!(
                "echo canceller: {name}, ERLE {} (AEC3's estimate), echo removed {} (microphone in/out while the far end plays), echo path {} ({} of it in the devices), drift {} ppm, {} resyncs",
                db(f("erle_db")),
                db(f("attenuation_db")),
                ms(f("delay_ms")),
                ms(f("device_delay_ms")),
                f("drift_ppm").map_or("-".to_string(), |v| format!("{v:.0}")),
                f("resyncs").map_or("-".to_string(), |v| format!("{v:.0}")),
            ));
        } else {
            let prefix = format!("{name}.");
            let list: Vec<String> = figs
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some(format!("{} {}", k.strip_prefix(&prefix)?, v)))
                .collect();
            lines.push(format!("processing: {name} ({})", list.join(", ")));
        }
    }
    lines
}
