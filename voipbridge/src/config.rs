//! The TOML configuration file. Every key is documented in README.md;
//! unknown keys are errors that name the key.

use crate::ban::BanConfig;
use crate::media::{AudioSpec, Codec};
use crate::sip::policy::{normalise_allow, Accept};
use crate::sip::ua::{Transport, UaConfig};
use crate::sip::uri::ServerUri;
use crate::srtp::sdes::SrtpMode;
use crate::tls::{MinVersion, TlsSettings};
use crate::transport::{Limits, TransportKind};
use serde::Deserialize;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// Configuration errors.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// File could not be read.
    #[error("{0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// TOML syntax or unknown/mistyped key.
    #[error("{0}: {1}")]
    Parse(PathBuf, String),
    /// A value is invalid.
    #[error("{0}: [{1}] {2}: {3}")]
    Value(PathBuf, &'static str, &'static str, String),
}

/// `[account]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// Our address of record, e.g. "sip:bridge@127.0.0.1".
    pub uri: String,
    /// Registrar: `sip:host[:port][;transport=x]`, `sips:...`, `IP:port`
    /// or `host[:port]`; no REGISTER when absent.
    pub registrar: Option<String>,
    /// Outbound proxy (same forms): every out-of-dialog request goes there.
    pub outbound_proxy: Option<String>,
    /// Digest user name (default: the user part of `uri`).
    pub username: Option<String>,
    /// Digest password.
    pub password: Option<String>,
    /// File holding the password (must be mode 0600).
    pub password_file: Option<PathBuf>,
    /// Registration lifetime in seconds (default 3600).
    #[serde(default = "default_expires")]
    pub expires: u32,
}

fn default_expires() -> u32 {
    3600
}

/// `[sip]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sip {
    /// Listen address, e.g. "127.0.0.1:5070".
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Transport: "udp" (default), "tcp" or "tls".
    #[serde(default = "default_transport")]
    pub transport: String,
    /// RFC 3261 T1 in ms (default 500).
    #[serde(default = "default_t1")]
    pub t1_ms: u64,
    /// RFC 3261 T2 in ms (default 4000).
    #[serde(default = "default_t2")]
    pub t2_ms: u64,
    /// RFC 3261 T4 in ms (default 5000).
    #[serde(default = "default_t4")]
    pub t4_ms: u64,
    /// Most server transactions kept (default 2048); beyond, requests are
    /// answered statelessly.
    #[serde(default = "default_max_transactions")]
    pub max_transactions: usize,
    /// TCP/TLS: accepted connections at once (and connections we open).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// TCP/TLS: accepted connections from one address.
    #[serde(default = "default_max_per_source")]
    pub max_connections_per_source: usize,
    /// TCP/TLS: close a connection silent this long, in seconds.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_s: u64,
    /// TCP/TLS: RFC 5626 CRLF keep-alive interval on connections we open (0: off).
    #[serde(default = "default_keepalive")]
    pub keepalive_s: u64,
}

fn default_max_connections() -> usize {
    Limits::default().max_connections
}
fn default_max_per_source() -> usize {
    Limits::default().max_connections_per_source
}
fn default_idle_timeout() -> u64 {
    Limits::default().idle_timeout.as_secs()
}
fn default_keepalive() -> u64 {
    120
}

/// `[tls]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// CA certificates (PEM) that sign the servers we connect to; the system roots when absent.
    pub ca_file: Option<PathBuf>,
    /// Our certificate chain (PEM): client certificate, and server certificate of our listener.
    pub cert_file: Option<PathBuf>,
    /// Its private key (PEM, mode 0600).
    pub key_file: Option<PathBuf>,
    /// "1.2" (default) or "1.3".
    pub min_version: Option<String>,
}

/// `[ban]`: built-in abuse banning.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ban {
    /// Count offences and ban (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Sliding window of the counters, in seconds.
    #[serde(default = "default_ban_window")]
    pub window_s: u64,
    /// Ban length in seconds.
    #[serde(default = "default_ban_time")]
    pub ban_time_s: u64,
    /// Failed digest authentications within the window before a ban (0: never).
    #[serde(default = "default_max_failed_auth")]
    pub max_failed_auth: u32,
    /// Requests for unknown users within the window (0: never).
    #[serde(default = "default_max_unknown_user")]
    pub max_unknown_user: u32,
    /// Malformed messages within the window (0: never).
    #[serde(default = "default_max_malformed")]
    pub max_malformed: u32,
    /// Unauthorised requests within the window (0: never).
    #[serde(default = "default_max_unauthorised")]
    pub max_unauthorised: u32,
    /// Messages of any kind within the window (0: never).
    #[serde(default = "default_max_requests")]
    pub max_requests: u32,
    /// Sources whose counters are kept.
    #[serde(default = "default_table_size")]
    pub table_size: usize,
    /// Bans kept at once.
    #[serde(default = "default_max_bans")]
    pub max_bans: usize,
    /// Addresses never banned (besides the registrar, always exempt).
    #[serde(default)]
    pub exempt: Vec<String>,
}

fn default_true() -> bool {
    true
}
fn default_ban_window() -> u64 {
    BanConfig::default().window.as_secs()
}
fn default_ban_time() -> u64 {
    BanConfig::default().ban_time.as_secs()
}
fn default_max_failed_auth() -> u32 {
    BanConfig::default().max_failed_auth
}
fn default_max_unknown_user() -> u32 {
    BanConfig::default().max_unknown_user
}
fn default_max_malformed() -> u32 {
    BanConfig::default().max_malformed
}
fn default_max_unauthorised() -> u32 {
    BanConfig::default().max_unauthorised
}
fn default_max_requests() -> u32 {
    BanConfig::default().max_requests
}
fn default_table_size() -> usize {
    BanConfig::default().table_size
}
fn default_max_bans() -> usize {
    BanConfig::default().max_bans
}
fn default_ban() -> Ban {
    toml::from_str("").unwrap_or_else(|_| unreachable!("[ban] has defaults for every key"))
}

fn default_listen() -> String {
    "127.0.0.1:5070".into()
}
fn default_transport() -> String {
    "udp".into()
}
fn default_t1() -> u64 {
    500
}
fn default_t2() -> u64 {
    4000
}
fn default_t4() -> u64 {
    5000
}
fn default_max_transactions() -> usize {
    2048
}

/// `[media]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Media {
    /// RTP port range "first-last"; substream n uses first + 2n.
    #[serde(default = "default_ports")]
    pub rtp_ports: String,
    /// Codecs in preference order.
    #[serde(default = "default_codecs")]
    pub codecs: Vec<String>,
    /// Packet time in ms (default 20).
    #[serde(default = "default_ptime")]
    pub ptime: u32,
    /// Jitter buffer bounds in ms.
    #[serde(default = "default_jmin")]
    pub jitter_min_ms: u32,
    /// Jitter buffer maximum in ms.
    #[serde(default = "default_jmax")]
    pub jitter_max_ms: u32,
    /// Hang up after this long without RTP (0: never).
    #[serde(default = "default_rtp_timeout")]
    pub rtp_timeout_ms: u32,
    /// Latch RTP to the first packet's source for calls the registrar /
    /// outbound proxy routed (NAT'd peers); otherwise only the SDP's address.
    #[serde(default)]
    pub latch: bool,
    /// SRTP with SDES keys: "off" (default), "optional" or "mandatory".
    #[serde(default = "default_srtp")]
    pub srtp: String,
    /// Allow SDES keys in SDP over unencrypted signalling (UDP/TCP).
    #[serde(default)]
    pub srtp_over_udp: bool,
}

fn default_srtp() -> String {
    "off".into()
}

fn default_ports() -> String {
    "40000-40100".into()
}
fn default_codecs() -> Vec<String> {
    vec!["PCMU".into(), "PCMA".into()]
}
fn default_ptime() -> u32 {
    20
}
fn default_jmin() -> u32 {
    40
}
fn default_jmax() -> u32 {
    200
}
fn default_rtp_timeout() -> u32 {
    30000
}

/// `[audio]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audio {
    /// Capture device for substream 0 ("alsa:hw:VoIP,1,0", "wav:x", "tone:440", "null").
    #[serde(default = "default_capture")]
    pub capture: String,
    /// Playback device for substream 0.
    #[serde(default = "default_playback")]
    pub playback: String,
    /// Substreams (simultaneous calls); devices for substream n replace a trailing ",0" with ",n".
    #[serde(default = "default_substreams")]
    pub substreams: usize,
    /// Acoustic echo cancellation: true, false or "auto" (on when capture
    /// and playback are one RTOS-routed `hw:VoIP,0,n`; see `dsp`).
    #[serde(default = "default_echo_cancel")]
    pub echo_cancel: toml::Value,
    /// Noise suppression after the echo canceller (WebRTC NS, 12 dB).
    #[serde(default)]
    pub noise_suppression: bool,
    /// ALSA period (engine wake-up granularity), ms.
    #[serde(default = "default_period_ms")]
    pub period_ms: u32,
    /// ALSA playback ring, ms: the most audio the playback device holds
    /// (2-4 periods).
    #[serde(default = "default_buffer_ms")]
    pub buffer_ms: u32,
    /// The media engine thread's SCHED_FIFO priority, 1-99; 0 (the
    /// default): normal scheduling. Needs CAP_SYS_NICE or an RLIMIT_RTPRIO
    /// that high (systemd `LimitRTPRIO=`); without it the engine logs a
    /// warning and runs at normal priority.
    #[serde(default)]
    pub realtime_priority: u8,
}

fn default_echo_cancel() -> toml::Value {
    toml::Value::String("auto".into())
}

fn default_capture() -> String {
    "alsa:hw:VoIP,1,0".into()
}
fn default_playback() -> String {
    "alsa:hw:VoIP,1,0".into()
}
fn default_substreams() -> usize {
    1
}
fn default_period_ms() -> u32 {
    crate::media::audio::DeviceConfig::default().period_ms
}
fn default_buffer_ms() -> u32 {
    crate::media::audio::DeviceConfig::default().buffer_ms
}

/// `[call]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallCfg {
    /// true (answer admitted calls at once), false (wait for `voipbridge
    /// answer`) or a delay in ms.
    #[serde(default = "default_auto_answer")]
    pub auto_answer: toml::Value,
    /// Callers admitted besides the registrar / outbound proxy: `user@host`
    /// (or a sip: URI), matched exactly on the From URI.
    #[serde(default)]
    pub allow: Vec<String>,
    /// "trusted" (registrar, outbound proxy, allow list) or "any" (dangerous).
    #[serde(default = "default_accept")]
    pub accept: String,
    /// Refuse unauthorised INVITEs by silence instead of 403.
    #[serde(default)]
    pub stealth: bool,
    /// Seconds an incoming call may ring before it is given up (480);
    /// outgoing calls ring at least 3 minutes.
    #[serde(default = "default_ring_timeout")]
    pub ring_timeout_s: u64,
}

fn default_accept() -> String {
    "trusted".into()
}
fn default_ring_timeout() -> u64 {
    60
}

fn default_auto_answer() -> toml::Value {
    toml::Value::Boolean(true)
}

/// `[control]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// Path of the control socket.
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
    /// A group whose members may use the socket too (mode 0660); root and
    /// the daemon's own user always may.
    pub group: Option<String>,
}

fn default_socket() -> PathBuf {
    PathBuf::from("/run/voipbridge.sock")
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[account]`.
    pub account: Account,
    /// `[sip]`.
    #[serde(default = "default_sip")]
    pub sip: Sip,
    /// `[media]`.
    #[serde(default = "default_media")]
    pub media: Media,
    /// `[audio]`.
    #[serde(default = "default_audio")]
    pub audio: Audio,
    /// `[call]`.
    #[serde(default = "default_call")]
    pub call: CallCfg,
    /// `[control]`.
    #[serde(default = "default_control")]
    pub control: Control,
    /// `[tls]`.
    #[serde(default)]
    pub tls: Option<Tls>,
    /// `[ban]`.
    #[serde(default = "default_ban")]
    pub ban: Ban,
}

fn default_sip() -> Sip {
    Sip {
        listen: default_listen(),
        transport: default_transport(),
        t1_ms: default_t1(),
        max_connections: default_max_connections(),
        max_connections_per_source: default_max_per_source(),
        idle_timeout_s: default_idle_timeout(),
        keepalive_s: default_keepalive(),
        t2_ms: default_t2(),
        t4_ms: default_t4(),
        max_transactions: default_max_transactions(),
    }
}
fn default_media() -> Media {
    Media {
        rtp_ports: default_ports(),
        codecs: default_codecs(),
        ptime: 20,
        jitter_min_ms: 40,
        jitter_max_ms: 200,
        rtp_timeout_ms: 30000,
        srtp: default_srtp(),
        srtp_over_udp: false,
        latch: false,
    }
}
fn default_audio() -> Audio {
    Audio {
        capture: default_capture(),
        playback: default_playback(),
        substreams: 1,
        echo_cancel: default_echo_cancel(),
        noise_suppression: false,
        period_ms: default_period_ms(),
        buffer_ms: default_buffer_ms(),
        realtime_priority: 0,
    }
}
fn default_call() -> CallCfg {
    CallCfg {
        auto_answer: default_auto_answer(),
        allow: Vec::new(),
        accept: default_accept(),
        stealth: false,
        ring_timeout_s: default_ring_timeout(),
    }
}
fn default_control() -> Control {
    Control {
        socket: default_socket(),
        group: None,
    }
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The UA core's settings.
    pub ua: UaConfig,
    /// Capture device per substream.
    pub capture: Vec<AudioSpec>,
    /// Playback device per substream.
    pub playback: Vec<AudioSpec>,
    /// Media tuning.
    pub media: Media,
    /// Audio device tuning (`[audio] period_ms`, `buffer_ms`).
    pub audio: Audio,
    /// Control socket path.
    pub socket: PathBuf,
    /// Capture processing (`[audio] echo_cancel`, `noise_suppression`).
    pub dsp: crate::dsp::DspSettings,
    /// SIP transport, its limits and the ban table (`[sip]`, `[ban]`).
    pub transport: TransportSettings,
    /// `[tls]`, with `transport = "tls"`.
    pub tls: Option<TlsSettings>,
    /// `[media] srtp`.
    pub srtp: SrtpMode,
    /// Whether SDES keys may be sent: TLS signalling, or `srtp_over_udp`.
    pub sdes_allowed: bool,
    /// `[control] group`.
    pub control_group: Option<String>,
}

/// The transport part of [`Settings`].
#[derive(Debug, Clone, PartialEq)]
pub struct TransportSettings {
    /// UDP, TCP or TLS.
    pub kind: TransportKind,
    /// Connection limits, idle timeout, keep-alives.
    pub limits: Limits,
    /// Ban thresholds.
    pub ban: BanConfig,
    /// `[ban] exempt`.
    pub exempt: Vec<IpAddr>,
}

/// The device of substream `n`: "hw:VoIP,1,0" becomes "hw:VoIP,1,n".
fn for_substream(spec: &str, n: usize) -> String {
    if n == 0 {
        return spec.to_string();
    }
    match spec.strip_suffix(",0") {
        Some(base) if spec.starts_with("alsa:") => format!("{base},{n}"),
        _ => spec.to_string(),
    }
}

impl Config {
    /// Reads the control socket path only (for the client subcommands).
    pub fn socket_of(path: &Path) -> Result<PathBuf, ConfigError> {
        Ok(Config::load(path)?.control.socket)
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.to_path_buf(), e))?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse(path.to_path_buf(), e.to_string()))
    }

    /// Validates and resolves into [`Settings`].
    pub fn settings(&self, path: &Path) -> Result<Settings, ConfigError> {
        let bad = |sec: &'static str, key: &'static str, msg: String| {
            ConfigError::Value(path.to_path_buf(), sec, key, msg)
        };
        let kind: TransportKind = self
            .sip
            .transport
            .parse()
            .map_err(|e| bad("sip", "transport", e))?;
        let sips = self.account.uri.starts_with("sips:");
        if !(self.account.uri.starts_with("sip:") || sips) {
            return Err(bad(
                "account",
                "uri",
                format!("'{}' is not a sip: or sips: URI", self.account.uri),
            ));
        }
        if sips && kind != TransportKind::Tls {
            return Err(bad(
                "account",
                "uri",
                "a sips: URI needs [sip] transport = \"tls\" (RFC 5630)".into(),
            ));
        }
        let password = match (&self.account.password, &self.account.password_file) {
            (Some(p), None) => p.clone(),
            (None, Some(f)) => {
                use std::os::unix::fs::PermissionsExt;
                let meta = std::fs::metadata(f).map_err(|e| {
                    bad("account", "password_file", format!("{}: {e}", f.display()))
                })?;
                if meta.permissions().mode() & 0o077 != 0 {
                    return Err(bad(
                        "account",
                        "password_file",
                        format!(
                            "{} must not be readable by group or others (chmod 600)",
                            f.display()
                        ),
                    ));
                }
                std::fs::read_to_string(f)
                    .map_err(|e| bad("account", "password_file", e.to_string()))?
                    .trim_end()
                    .to_string()
            }
            (None, None) => String::new(),
            (Some(_), Some(_)) => {
                return Err(bad(
                    "account",
                    "password",
                    "give either password or password_file, not both".into(),
                ))
            }
        };
        if kind == TransportKind::Tls && !crate::tls::TLS_BUILT {
            return Err(bad(
                "sip",
                "transport",
                crate::tls::TlsError::NotBuilt.to_string(),
            ));
        }
        let transport = match kind {
            TransportKind::Udp => Transport::Udp,
            TransportKind::Tcp => Transport::Tcp,
            TransportKind::Tls => Transport::Tls,
        };
        let tls = match (&self.tls, kind) {
            (Some(t), TransportKind::Tls) => Some(TlsSettings {
                ca_file: t.ca_file.clone(),
                cert_file: t.cert_file.clone(),
                key_file: t.key_file.clone(),
                min_version: match &t.min_version {
                    Some(v) => v
                        .parse::<MinVersion>()
                        .map_err(|e| bad("tls", "min_version", e))?,
                    None => MinVersion::default(),
                },
            }),
            (None, TransportKind::Tls) => Some(TlsSettings::default()),
            (Some(_), _) => {
                return Err(bad(
                    "tls",
                    "ca_file",
                    "[tls] is set but [sip] transport is not \"tls\"".into(),
                ))
            }
            (None, _) => None,
        };
        if self.sip.max_connections == 0 || self.sip.max_connections_per_source == 0 {
            return Err(bad(
                "sip",
                "max_connections",
                "max_connections and max_connections_per_source must be at least 1".into(),
            ));
        }
        if self.sip.idle_timeout_s == 0 {
            return Err(bad("sip", "idle_timeout_s", "must be at least 1".into()));
        }
        if self.sip.keepalive_s != 0 && self.sip.keepalive_s < 20 {
            return Err(bad(
                "sip",
                "keepalive_s",
                format!(
                    "{} s is too often (at least 20, or 0 for off)",
                    self.sip.keepalive_s
                ),
            ));
        }
        let srtp: SrtpMode = self
            .media
            .srtp
            .parse()
            .map_err(|e| bad("media", "srtp", e))?;
        if srtp != SrtpMode::Off && !crate::srtp::SRTP_BUILT {
            return Err(bad(
                "media",
                "srtp",
                format!("\"{}\": this voipbridge was built without SRTP (cargo feature \"srtp\"); use \"off\"", self.media.srtp),
            ));
        }
        let sdes_allowed = kind == TransportKind::Tls || self.media.srtp_over_udp;
        if srtp == SrtpMode::Mandatory && !sdes_allowed {
            return Err(bad(
                "media",
                "srtp",
                format!(
                    "mandatory SRTP needs its SDES keys sent over TLS: set [sip] transport = \"tls\" (or srtp_over_udp = true to send them over {kind} in clear)"
                ),
            ));
        }
        let exempt = self
            .ban
            .exempt
            .iter()
            .map(|a| {
                a.parse::<IpAddr>()
                    .map_err(|_| bad("ban", "exempt", format!("'{a}' is not an IP address")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if self.ban.window_s == 0 || self.ban.ban_time_s == 0 {
            return Err(bad(
                "ban",
                "window_s",
                "window_s and ban_time_s must be at least 1".into(),
            ));
        }
        let server =
            |key: &'static str, v: &Option<String>| -> Result<Option<ServerUri>, ConfigError> {
                let Some(v) = v else { return Ok(None) };
                let s = ServerUri::parse(v).map_err(|e| bad("account", key, e.to_string()))?;
                let wanted = if s.secure {
                    Some("tls".to_string())
                } else {
                    s.transport.clone()
                };
                if let Some(t) = wanted {
                    if !t.eq_ignore_ascii_case(transport.via_token()) {
                        return Err(bad(
                            "account",
                            key,
                            format!(
                                "'{v}' asks for transport {t}, but [sip] transport is {}",
                                transport.via_token().to_ascii_lowercase()
                            ),
                        ));
                    }
                }
                Ok(Some(s))
            };
        let registrar = server("registrar", &self.account.registrar)?;
        let outbound_proxy = server("outbound_proxy", &self.account.outbound_proxy)?;
        let local: SocketAddr = self.sip.listen.parse().map_err(|_| {
            bad(
                "sip",
                "listen",
                format!("'{}' is not IP:port", self.sip.listen),
            )
        })?;
        if local.ip().is_unspecified() {
            return Err(bad(
                "sip",
                "listen",
                "give the address peers reach us at, not 0.0.0.0".into(),
            ));
        }
        let (lo, hi) = self
            .media
            .rtp_ports
            .split_once('-')
            .and_then(|(a, b)| Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?)))
            .ok_or_else(|| {
                bad(
                    "media",
                    "rtp_ports",
                    format!("'{}' is not first-last", self.media.rtp_ports),
                )
            })?;
        let subs = self.audio.substreams;
        if !(1..=8).contains(&subs) {
            return Err(bad("audio", "substreams", format!("{subs} is not in 1..8")));
        }
        if lo >= hi || u32::from(hi - lo) + 1 < 2 * subs as u32 {
            return Err(bad(
                "media",
                "rtp_ports",
                format!("{lo}-{hi} has no room for {subs} substream(s)"),
            ));
        }
        let codecs = self
            .media
            .codecs
            .iter()
            .map(|c| c.parse::<Codec>().map_err(|e| bad("media", "codecs", e)))
            .collect::<Result<Vec<_>, _>>()?;
        if codecs.is_empty() {
            return Err(bad("media", "codecs", "empty".into()));
        }
        if ![10, 20, 30, 40, 60].contains(&self.media.ptime) {
            return Err(bad(
                "media",
                "ptime",
                format!("{} ms is not one of 10, 20, 30, 40, 60", self.media.ptime),
            ));
        }
        if !(1..=100).contains(&self.audio.period_ms) {
            return Err(bad(
                "audio",
                "period_ms",
                format!("{} ms is not in 1..100", self.audio.period_ms),
            ));
        }
        let periods = self.audio.buffer_ms / self.audio.period_ms;
        if !self.audio.buffer_ms.is_multiple_of(self.audio.period_ms)
            || !(2..=16).contains(&periods)
        {
            return Err(bad(
                "audio",
                "buffer_ms",
                format!(
                    "{} ms is not 2 to 16 periods of {} ms (2-4 keep the latency low)",
                    self.audio.buffer_ms, self.audio.period_ms
                ),
            ));
        }
        if self.audio.realtime_priority > 99 {
            return Err(bad(
                "audio",
                "realtime_priority",
                format!(
                    "{} is not 0 (normal scheduling) or a SCHED_FIFO priority 1..99",
                    self.audio.realtime_priority
                ),
            ));
        }
        let auto_answer = match &self.call.auto_answer {
            toml::Value::Boolean(true) => Some(Duration::ZERO),
            toml::Value::Boolean(false) => None,
            toml::Value::Integer(ms) if *ms >= 0 => Some(Duration::from_millis(*ms as u64)),
            v => {
                return Err(bad(
                    "call",
                    "auto_answer",
                    format!("{v} is not true, false or milliseconds"),
                ))
            }
        };
        if !(1..=3600).contains(&self.call.ring_timeout_s) {
            return Err(bad(
                "call",
                "ring_timeout_s",
                format!("{} is not in 1..3600", self.call.ring_timeout_s),
            ));
        }
        let ring_timeout = Duration::from_secs(self.call.ring_timeout_s);
        if auto_answer.is_some_and(|d| d >= ring_timeout) {
            return Err(bad(
                "call",
                "auto_answer",
                format!(
                    "a delay of {} ms is not shorter than ring_timeout_s = {}",
                    auto_answer.unwrap_or_default().as_millis(),
                    self.call.ring_timeout_s
                ),
            ));
        }
        let accept: Accept = self
            .call
            .accept
            .parse()
            .map_err(|e| bad("call", "accept", e))?;
        let allow_from = self
            .call
            .allow
            .iter()
            .map(|a| {
                normalise_allow(a).ok_or_else(|| {
                    bad(
                        "call",
                        "allow",
                        format!(
                            "'{a}' is not user@host or a sip: URI (entries are matched exactly on the caller's URI since this version, no longer as substrings)"
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let timer = |key: &'static str, ms: u64, lo: u64, hi: u64| {
            if (lo..=hi).contains(&ms) {
                Ok(Duration::from_millis(ms))
            } else {
                Err(bad("sip", key, format!("{ms} ms is not in {lo}..{hi}")))
            }
        };
        let t1 = timer("t1_ms", self.sip.t1_ms, 1, 60_000)?;
        let t2 = timer("t2_ms", self.sip.t2_ms, self.sip.t1_ms, 600_000)?;
        let t4 = timer("t4_ms", self.sip.t4_ms, 1, 600_000)?;
        if !(16..=1_000_000).contains(&self.sip.max_transactions) {
            return Err(bad(
                "sip",
                "max_transactions",
                format!("{} is not in 16..1000000", self.sip.max_transactions),
            ));
        }
        let mut capture = Vec::new();
        let mut playback = Vec::new();
        for n in 0..subs {
            capture.push(
                for_substream(&self.audio.capture, n).parse().map_err(
                    |e: crate::media::MediaError| bad("audio", "capture", e.to_string()),
                )?,
            );
            let p: AudioSpec = for_substream(&self.audio.playback, n)
                .parse()
                .map_err(|e: crate::media::MediaError| bad("audio", "playback", e.to_string()))?;
            if matches!(p, AudioSpec::Tone(_)) {
                return Err(bad(
                    "audio",
                    "playback",
                    "a tone cannot be a playback device".into(),
                ));
            }
            playback.push(p);
        }
        let echo_cancel = match &self.audio.echo_cancel {
            toml::Value::Boolean(true) => crate::dsp::EchoMode::On,
            toml::Value::Boolean(false) => crate::dsp::EchoMode::Off,
            toml::Value::String(v) if v == "auto" => crate::dsp::EchoMode::Auto,
            v => {
                return Err(bad(
                    "audio",
                    "echo_cancel",
                    format!("{v} is not true, false or \"auto\""),
                ))
            }
        };
        if echo_cancel == crate::dsp::EchoMode::On && !crate::dsp::AEC_BUILT {
            return Err(bad(
                "audio",
                "echo_cancel",
                crate::dsp::DspError::NotBuilt.to_string(),
            ));
        }
        let user = crate::sip::message::uri_user(&self.account.uri).unwrap_or_default();
        Ok(Settings {
            ua: UaConfig {
                aor: self.account.uri.clone(),
                registrar,
                outbound_proxy,
                username: self.account.username.clone().unwrap_or(user),
                password,
                local,
                expires: self.account.expires,
                codecs,
                ptime: self.media.ptime,
                auto_answer,
                ring_timeout,
                accept,
                allow_from,
                stealth: self.call.stealth,
                latch: self.media.latch,
                rtp_base: lo,
                slots: subs,
                t1,
                t2,
                t4,
                transport,
                max_transactions: self.sip.max_transactions,
                srtp,
                sdes_allowed,
            },
            capture,
            playback,
            media: self.media.clone(),
            audio: self.audio.clone(),
            socket: self.control.socket.clone(),
            transport: TransportSettings {
                kind,
                limits: Limits {
                    max_connections: self.sip.max_connections,
                    max_connections_per_source: self.sip.max_connections_per_source,
                    idle_timeout: Duration::from_secs(self.sip.idle_timeout_s),
                    keepalive: (self.sip.keepalive_s > 0)
                        .then(|| Duration::from_secs(self.sip.keepalive_s)),
                    ..Limits::default()
                },
                ban: BanConfig {
                    enabled: self.ban.enabled,
                    window: Duration::from_secs(self.ban.window_s),
                    ban_time: Duration::from_secs(self.ban.ban_time_s),
                    max_failed_auth: self.ban.max_failed_auth,
                    max_unknown_user: self.ban.max_unknown_user,
                    max_malformed: self.ban.max_malformed,
                    max_unauthorised: self.ban.max_unauthorised,
                    max_requests: self.ban.max_requests,
                    table_size: self.ban.table_size,
                    max_bans: self.ban.max_bans,
                },
                exempt,
            },
            tls,
            srtp,
            sdes_allowed,
            control_group: self.control.group.clone(),
            dsp: crate::dsp::DspSettings {
                echo_cancel,
                noise_suppression: self.audio.noise_suppression,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> Result<Settings, ConfigError> {
        let c: Config =
            toml::from_str(text).map_err(|e| ConfigError::Parse("t.toml".into(), e.to_string()))?;
        c.settings(Path::new("t.toml"))
    }

    #[test]
    fn minimal_file_gets_defaults() {
        let s = settings("[account]\nuri = \"sip:bridge@127.0.0.1\"\n").unwrap();
        assert_eq!(s.ua.local, "127.0.0.1:5070".parse().unwrap());
        assert_eq!(s.capture, vec![AudioSpec::Alsa("hw:VoIP,1,0".into())]);
        assert_eq!(s.ua.codecs, vec![Codec::Pcmu, Codec::Pcma]);
        assert_eq!(s.ua.auto_answer, Some(Duration::ZERO));
        assert_eq!(s.ua.registrar, None);
        assert_eq!(s.ua.outbound_proxy, None);
        assert_eq!(
            (s.ua.t1, s.ua.t2, s.ua.t4),
            (
                Duration::from_millis(500),
                Duration::from_secs(4),
                Duration::from_secs(5)
            )
        );
    }

    #[test]
    #[cfg(feature = "aec")]
    fn echo_cancel_and_noise_suppression() {
        use crate::dsp::{DspSettings, EchoMode};
        let base = "[account]\nuri = \"sip:b@127.0.0.1\"\n";
        assert_eq!(settings(base).unwrap().dsp, DspSettings::default());
        assert_eq!(DspSettings::default().echo_cancel, EchoMode::Auto);
        for (v, m) in [
            ("true", EchoMode::On),
            ("false", EchoMode::Off),
            ("\"auto\"", EchoMode::Auto),
        ] {
            let s = settings(&format!(
                "{base}[audio]\necho_cancel = {v}\nnoise_suppression = true\n"
            ))
            .unwrap();
            assert_eq!(
                s.dsp,
                DspSettings {
                    echo_cancel: m,
                    noise_suppression: true
                }
            );
        }
        for v in ["\"yes\"", "1"] {
            let e = settings(&format!("{base}[audio]\necho_cancel = {v}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("[audio] echo_cancel"), "{e}");
        }
        let e = settings(&format!("{base}[audio]\nnoise_suppression = \"x\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("noise_suppression"), "{e}");
    }

    #[test]
    fn substreams_get_their_own_devices() {
        let s =
            settings("[account]\nuri = \"sip:b@127.0.0.1\"\n[audio]\nsubstreams = 3\n").unwrap();
        assert_eq!(s.playback[2], AudioSpec::Alsa("hw:VoIP,1,2".into()));
    }

    #[test]
    fn errors_name_the_key() {
        for r in ["kamailio:port", "bad host:5060", "-x.example:5060", "a..b"] {
            let e = settings(&format!(
                "[account]\nuri = \"sip:b@h\"\nregistrar = \"{r}\"\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(e.contains("[account] registrar"), "{e}");
        }
        let e = settings("[account]\nuri = \"sip:b@h\"\n[media]\ncodecs = [\"G729\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[media] codecs") && e.contains("G729"), "{e}");
        let e = settings("[account]\nuri = \"sip:b@h\"\nfoo = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("foo"), "{e}");
        let e = settings("[account]\nuri = \"sip:b@h\"\n[call]\nauto_answer = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[call] auto_answer"), "{e}");
        let e = settings("[account]\nuri = \"sip:b@h\"\n[sip]\ntransport = \"sctp\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[sip] transport") && e.contains("sctp"), "{e}");
    }

    #[test]
    fn registrar_and_outbound_proxy_in_every_form() {
        let s = settings("[account]\nuri = \"sip:b@h\"\nregistrar = \"localhost:5360\"\n").unwrap();
        let r = s.ua.registrar.unwrap();
        assert_eq!(
            (r.host.as_str(), r.port, r.addr, r.is_uri),
            ("localhost", 5360, None, false)
        );
        let s =
            settings("[account]\nuri = \"sip:b@h\"\nregistrar = \"sip.example.org\"\n").unwrap();
        assert_eq!(s.ua.registrar.unwrap().port, 5060);
        let s = settings("[account]\nuri = \"sip:b@h\"\nregistrar = \"[::1]:5060\"\n").unwrap();
        assert_eq!(
            s.ua.registrar.unwrap().addr,
            Some("[::1]:5060".parse().unwrap())
        );
        // What every SIP phone's configuration looks like.
        let s = settings(
            "[account]\nuri = \"sip:b@h\"\nregistrar = \"sip:pbx.example.com\"\noutbound_proxy = \"sip:10.0.0.1:5062;transport=udp\"\n",
        )
        .unwrap();
        let r = s.ua.registrar.unwrap();
        assert_eq!((r.uri.as_str(), r.is_uri), ("sip:pbx.example.com", true));
        let p = s.ua.outbound_proxy.unwrap();
        assert_eq!(p.addr, Some("10.0.0.1:5062".parse().unwrap()));
        let s = settings(
            "[account]\nuri = \"sip:b@h\"\nregistrar = \"sip:pbx.example.com;transport=tcp\"\n[sip]\ntransport = \"tcp\"\n",
        )
        .unwrap();
        assert!(s.ua.registrar.is_some());
        // A transport the [sip] section does not run is refused, naming both.
        for (r, want) in [
            ("sip:pbx.example.com;transport=tcp", "transport tcp"),
            ("sips:pbx.example.com", "transport tls"),
        ] {
            let e = settings(&format!(
                "[account]\nuri = \"sip:b@h\"\nregistrar = \"{r}\"\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(
                e.contains("[account] registrar")
                    && e.contains(want)
                    && e.contains("[sip] transport is udp"),
                "{e}"
            );
        }
        let e = settings("[account]\nuri = \"sip:b@h\"\noutbound_proxy = \"sip:u@p\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("[account] outbound_proxy") && e.contains("names a user"),
            "{e}"
        );
    }

    #[test]
    fn call_policy_keys() {
        let s = settings("[account]\nuri = \"sip:b@h\"\n").unwrap();
        assert_eq!(s.ua.accept, Accept::Trusted);
        assert!(!s.ua.stealth && !s.ua.latch);
        assert_eq!(s.ua.ring_timeout, Duration::from_secs(60));
        let s = settings(
            "[account]\nuri = \"sip:b@h\"\n[call]\naccept = \"any\"\nstealth = true\nallow = [\"alice@Door.example\", \"sip:bob@10.0.0.1:5060\"]\nring_timeout_s = 30\nauto_answer = false\n[media]\nlatch = true\n",
        )
        .unwrap();
        assert_eq!(s.ua.accept, Accept::Any);
        assert!(s.ua.stealth && s.ua.latch);
        assert_eq!(s.ua.allow_from, vec!["alice@door.example", "bob@10.0.0.1"]);
        assert_eq!(s.ua.ring_timeout, Duration::from_secs(30));
        for (bad, key) in [
            ("[call]\nallow = [\"alice\"]", "[call] allow"),
            ("[call]\naccept = \"all\"", "[call] accept"),
            ("[call]\nring_timeout_s = 0", "[call] ring_timeout_s"),
            ("[call]\nauto_answer = 60000", "[call] auto_answer"),
            ("[sip]\nt1_ms = 0", "[sip] t1_ms"),
            ("[sip]\nt2_ms = 100", "[sip] t2_ms"),
            ("[sip]\nmax_transactions = 1", "[sip] max_transactions"),
        ] {
            let e = settings(&format!("[account]\nuri = \"sip:b@h\"\n{bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{bad}: {e}");
        }
        let e = settings("[account]\nuri = \"sip:b@h\"\n[call]\nallow = [\"alice\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("exactly"), "{e}");
    }

    #[test]
    fn realtime_priority_is_off_by_default_and_checked() {
        let s = settings("[account]\nuri = \"sip:b@127.0.0.1\"\n").unwrap();
        assert_eq!(s.audio.realtime_priority, 0);
        let s = settings("[account]\nuri = \"sip:b@127.0.0.1\"\n[audio]\nrealtime_priority = 10\n")
            .unwrap();
        assert_eq!(s.audio.realtime_priority, 10);
        for bad in ["100", "255", "-1", "256", "\"high\""] {
            let e = settings(&format!(
                "[account]\nuri = \"sip:b@127.0.0.1\"\n[audio]\nrealtime_priority = {bad}\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(e.contains("realtime_priority"), "{bad}: {e}");
        }
    }

    #[test]
    fn device_period_and_buffer_are_checked() {
        let s = settings("[account]\nuri = \"sip:b@127.0.0.1\"\n").unwrap();
        assert_eq!((s.audio.period_ms, s.audio.buffer_ms), (10, 20));
        assert!(!s.media.latch);
        let s = settings(
            "[account]\nuri = \"sip:b@127.0.0.1\"\n[audio]\nperiod_ms = 20\nbuffer_ms = 80\n[media]\nlatch = true\n",
        )
        .unwrap();
        assert_eq!((s.audio.period_ms, s.audio.buffer_ms), (20, 80));
        assert!(s.media.latch);
        for (p, b) in [(10, 10), (10, 25), (0, 20), (10, 170), (200, 400)] {
            let e = settings(&format!(
                "[account]\nuri = \"sip:b@127.0.0.1\"\n[audio]\nperiod_ms = {p}\nbuffer_ms = {b}\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(
                e.contains("[audio] period_ms") || e.contains("[audio] buffer_ms"),
                "{e}"
            );
        }
    }

    #[test]
    fn transport_defaults_to_udp_and_tcp_is_accepted() {
        let s = settings("[account]\nuri = \"sip:b@127.0.0.1\"\n").unwrap();
        assert_eq!(s.ua.transport, Transport::Udp);
        let s =
            settings("[account]\nuri = \"sip:b@127.0.0.1\"\n[sip]\ntransport = \"TCP\"\n").unwrap();
        assert_eq!(s.ua.transport, Transport::Tcp);
    }

    #[test]
    #[cfg(all(feature = "tls", feature = "srtp"))]
    fn tls_srtp_and_security_keys() {
        let s = settings(
            "[account]\nuri = \"sips:b@example.org\"\n[sip]\ntransport = \"tls\"\nmax_connections = 10\nidle_timeout_s = 60\nkeepalive_s = 0\n[tls]\nca_file = \"/x/ca.pem\"\nmin_version = \"1.3\"\n[media]\nsrtp = \"mandatory\"\n[ban]\nmax_requests = 50\nexempt = [\"10.0.0.1\"]\n[control]\ngroup = \"voip\"\n",
        )
        .unwrap();
        assert_eq!(s.ua.transport, Transport::Tls);
        assert_eq!(s.transport.kind, TransportKind::Tls);
        assert_eq!(s.transport.limits.max_connections, 10);
        assert_eq!(s.transport.limits.idle_timeout, Duration::from_secs(60));
        assert_eq!(s.transport.limits.keepalive, None);
        let tls = s.tls.unwrap();
        assert_eq!(tls.ca_file, Some(PathBuf::from("/x/ca.pem")));
        assert_eq!(tls.min_version, MinVersion::Tls13);
        assert_eq!(s.srtp, SrtpMode::Mandatory);
        assert!(s.sdes_allowed);
        assert_eq!(s.transport.ban.max_requests, 50);
        assert_eq!(
            s.transport.ban.max_failed_auth, 5,
            "defaults for the rest of [ban]"
        );
        assert_eq!(
            s.transport.exempt,
            vec!["10.0.0.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(s.control_group.as_deref(), Some("voip"));
        assert_eq!(s.ua.username, "b");
        // Defaults: UDP, no TLS, SRTP off, banning on, keep-alives at 120 s.
        let d = settings("[account]\nuri = \"sip:b@h\"\n").unwrap();
        assert_eq!(d.srtp, SrtpMode::Off);
        assert!(d.tls.is_none() && !d.sdes_allowed);
        assert!(d.transport.ban.enabled);
        assert_eq!(d.transport.limits.keepalive, Some(Duration::from_secs(120)));
        // TLS without [tls]: system roots.
        let s = settings("[account]\nuri = \"sip:b@h\"\n[sip]\ntransport = \"tls\"\n").unwrap();
        assert_eq!(s.tls, Some(TlsSettings::default()));
    }

    #[test]
    #[cfg(all(feature = "tls", feature = "srtp"))]
    fn unsafe_combinations_are_refused_with_the_key() {
        for (text, key, words) in [
            ("[account]\nuri = \"sip:b@h\"\n[media]\nsrtp = \"mandatory\"\n", "[media] srtp", "over TLS"),
            ("[account]\nuri = \"sips:b@h\"\n", "[account] uri", "transport = \"tls\""),
            ("[account]\nuri = \"sip:b@h\"\n[tls]\nca_file = \"x\"\n", "[tls]", "not \"tls\""),
            ("[account]\nuri = \"sip:b@h\"\n[media]\nsrtp = \"on\"\n", "[media] srtp", "off, optional or mandatory"),
            ("[account]\nuri = \"sip:b@h\"\n[sip]\ntransport = \"tls\"\n[tls]\nmin_version = \"1.0\"\n", "[tls] min_version", "1.0"),
            ("[account]\nuri = \"sip:b@h\"\n[sip]\nmax_connections = 0\n", "[sip] max_connections", "at least 1"),
            ("[account]\nuri = \"sip:b@h\"\n[sip]\nkeepalive_s = 5\n", "[sip] keepalive_s", "too often"),
            ("[account]\nuri = \"sip:b@h\"\n[ban]\nexempt = [\"kamailio\"]\n", "[ban] exempt", "kamailio"),
            ("[account]\nuri = \"sip:b@h\"\n[ban]\nban_time_s = 0\n", "[ban] window_s", "at least 1"),
            ("[account]\nuri = \"sip:b@h\"\n[ban]\nbogus = 1\n", "bogus", "unknown field"),
        ] {
            let e = settings(text).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains(words), "{text}: {e}");
        }
        // Mandatory SRTP over UDP is allowed when the user says so.
        let s = settings(
            "[account]\nuri = \"sip:b@h\"\n[media]\nsrtp = \"mandatory\"\nsrtp_over_udp = true\n",
        )
        .unwrap();
        assert!(s.sdes_allowed);
    }

    /// A binary built without a feature refuses the keys that need it,
    /// naming the feature, and runs without them.
    #[test]
    fn keys_of_features_not_built_are_refused() {
        let base = "[account]\nuri = \"sip:b@h\"\n";
        let cases = [
            (
                !crate::tls::TLS_BUILT,
                "[sip]\ntransport = \"tls\"\n",
                "[sip] transport",
                "\"tls\"",
            ),
            (
                !crate::srtp::SRTP_BUILT,
                "[media]\nsrtp = \"optional\"\nsrtp_over_udp = true\n",
                "[media] srtp",
                "\"srtp\"",
            ),
            (
                !crate::dsp::AEC_BUILT,
                "[audio]\necho_cancel = true\n",
                "[audio] echo_cancel",
                "\"aec\"",
            ),
        ];
        for (absent, text, key, feature) in cases {
            let r = settings(&format!("{base}{text}"));
            if absent {
                let e = r.unwrap_err().to_string();
                assert!(e.contains(key) && e.contains(feature), "{text}: {e}");
            } else {
                assert!(r.is_ok(), "{text}: {r:?}");
            }
        }
        assert!(
            settings(base).is_ok(),
            "the defaults need no optional feature"
        );
    }
}
