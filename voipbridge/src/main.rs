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
    /// Logs go to stderr (RUST_LOG=debug for more). SIGTERM or SIGINT
    /// un-registers, hangs up every call and exits 0.
    Run {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Call a SIP URI (e.g. sip:alice@127.0.0.1:5080).
    Call {
        /// Who to call.
        uri: String,
        /// Configuration file (to find the control socket).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Answer a ringing call (the oldest unless --call).
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
    /// Show registration, calls, codecs and RTP counters.
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
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
    rt.block_on(async_main(cli))
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
    };
    let socket = Config::socket_of(&config)?;
    let answer = agent::request(&socket, &req).await.with_context(|| {
        format!(
            "cannot reach voipbridge at {} (is `voipbridge run` running?)",
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
    if let Some(st) = answer.get("status") {
        if json {
            println!("{st}");
        } else {
            print_status(st);
        }
    }
    Ok(())
}

fn print_status(st: &serde_json::Value) {
    println!(
        "registration: {}",
        st["registration"].as_str().unwrap_or("?")
    );
    let calls = st["calls"].as_array().cloned().unwrap_or_default();
    if calls.is_empty() {
        println!("no calls");
    }
    for c in calls {
        println!(
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
            println!(
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
            println!(
                "  rtcp: sent {} received {} rtt {} far end lost {:.1} % far end jitter {} playout queue {} ms",
                r["rtcp_sent"],
                r["rtcp_received"],
                ms("rtt_ms"),
                r["remote_fraction_lost"].as_f64().unwrap_or(0.0) * 100.0,
                ms("remote_jitter_ms"),
                r["queued_ms"]
            );
        }
    }
}
