//! The TOML configuration file. Every key is documented in README.md;
//! unknown keys are errors that name the key.

use crate::media::{AudioSpec, Codec};
use crate::sip::ua::{Transport, UaConfig};
use serde::Deserialize;
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
    /// Registrar "host:port" (IP address); no REGISTER when absent.
    pub registrar: Option<String>,
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
    /// Transport: "udp" (default) or "tcp".
    #[serde(default = "default_transport")]
    pub transport: String,
    /// RFC 3261 T1 in ms (default 500).
    #[serde(default = "default_t1")]
    pub t1_ms: u64,
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

/// `[call]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallCfg {
    /// true (answer at once), false (wait for `voipbridge answer`) or a delay in ms.
    #[serde(default = "default_auto_answer")]
    pub auto_answer: toml::Value,
    /// Only these callers (substrings of their URI); empty: everyone.
    #[serde(default)]
    pub allow: Vec<String>,
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
}

fn default_sip() -> Sip {
    Sip {
        listen: default_listen(),
        transport: default_transport(),
        t1_ms: default_t1(),
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
    }
}
fn default_audio() -> Audio {
    Audio {
        capture: default_capture(),
        playback: default_playback(),
        substreams: 1,
    }
}
fn default_call() -> CallCfg {
    CallCfg {
        auto_answer: default_auto_answer(),
        allow: Vec::new(),
    }
}
fn default_control() -> Control {
    Control {
        socket: default_socket(),
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
    /// Control socket path.
    pub socket: PathBuf,
    /// The registrar as a host name and port, to be resolved (A/AAAA) by the
    /// agent at start into `ua.registrar`; `None` when it is an IP address.
    pub registrar_name: Option<(String, u16)>,
}

/// `host[:port]` with a DNS host name (letters, digits, `-`, `.`), port 5060 when absent.
fn host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (s, 5060),
    };
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    ok.then(|| (host.to_string(), port))
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
        if !self.account.uri.starts_with("sip:") {
            return Err(bad(
                "account",
                "uri",
                format!("'{}' is not a sip: URI", self.account.uri),
            ));
        }
        let (registrar, registrar_name) = match &self.account.registrar {
            None => (None, None),
            Some(r) => match r.parse::<SocketAddr>() {
                Ok(a) => (Some(a), None),
                Err(_) => {
                    let hp = host_port(r).ok_or_else(|| {
                        bad(
                            "account",
                            "registrar",
                            format!("'{r}' is not IP:port or host[:port]"),
                        )
                    })?;
                    (None, Some(hp))
                }
            },
        };
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
        let transport: Transport = self
            .sip
            .transport
            .parse()
            .map_err(|e| bad("sip", "transport", e))?;
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
        let user = self
            .account
            .uri
            .trim_start_matches("sip:")
            .split('@')
            .next()
            .unwrap_or("")
            .to_string();
        Ok(Settings {
            ua: UaConfig {
                aor: self.account.uri.clone(),
                registrar,
                username: self.account.username.clone().unwrap_or(user),
                password,
                local,
                expires: self.account.expires,
                codecs,
                ptime: self.media.ptime,
                auto_answer,
                allow_from: self.call.allow.clone(),
                rtp_base: lo,
                slots: subs,
                t1: Duration::from_millis(self.sip.t1_ms.max(1)),
                t2: Duration::from_secs(4),
                transport,
            },
            capture,
            playback,
            media: self.media.clone(),
            socket: self.control.socket.clone(),
            registrar_name,
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
    fn a_registrar_host_name_is_kept_for_the_resolver() {
        let s = settings("[account]\nuri = \"sip:b@h\"\nregistrar = \"localhost:5360\"\n").unwrap();
        assert_eq!(s.ua.registrar, None);
        assert_eq!(s.registrar_name, Some(("localhost".into(), 5360)));
        let s =
            settings("[account]\nuri = \"sip:b@h\"\nregistrar = \"sip.example.org\"\n").unwrap();
        assert_eq!(s.registrar_name, Some(("sip.example.org".into(), 5060)));
        let s = settings("[account]\nuri = \"sip:b@h\"\nregistrar = \"[::1]:5060\"\n").unwrap();
        assert_eq!(s.ua.registrar, Some("[::1]:5060".parse().unwrap()));
        assert_eq!(s.registrar_name, None);
    }

    #[test]
    fn transport_defaults_to_udp_and_tcp_is_accepted() {
        let s = settings("[account]\nuri = \"sip:b@127.0.0.1\"\n").unwrap();
        assert_eq!(s.ua.transport, Transport::Udp);
        let s =
            settings("[account]\nuri = \"sip:b@127.0.0.1\"\n[sip]\ntransport = \"TCP\"\n").unwrap();
        assert_eq!(s.ua.transport, Transport::Tcp);
    }
}
