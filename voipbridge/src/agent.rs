//! The tokio layer: owns the SIP socket, the clock, the control socket and
//! the calls' media, and drives the sans-IO [`Ua`].

use crate::config::Settings;
use crate::media::session::MediaEvent;
use crate::media::{self, MediaHandle, MediaParams};
use crate::sip::ua::{Action, Command, Event, Input, Ua};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UdpSocket, UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

/// Errors that stop the agent.
#[derive(Debug, Error)]
pub enum AgentError {
    /// The SIP socket could not be bound.
    #[error("cannot listen for SIP on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// The control socket could not be created.
    #[error("control socket {0}: {1}")]
    Control(PathBuf, std::io::Error),
}

/// A control request (one JSON object per line).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Place a call.
    Call {
        /// SIP URI.
        uri: String,
    },
    /// Answer a ringing call.
    Answer {
        /// Call-ID (oldest ringing when absent).
        #[serde(default)]
        call: Option<String>,
    },
    /// Hang up.
    Hangup {
        /// Call-ID (all when absent).
        #[serde(default)]
        call: Option<String>,
    },
    /// Send DTMF (RFC 4733).
    Dtmf {
        /// Digits 0-9 * # A-D.
        digits: String,
        /// Call-ID (the first call when absent).
        #[serde(default)]
        call: Option<String>,
    },
    /// Hold or resume.
    Hold {
        /// true: hold, false: resume.
        on: bool,
        /// Call-ID (the first call when absent).
        #[serde(default)]
        call: Option<String>,
    },
    /// Registration and calls.
    Status,
}

/// A call in `status`.
#[derive(Debug, Clone, Serialize)]
pub struct CallStatus {
    /// Signalling view.
    #[serde(flatten)]
    pub call: crate::sip::ua::CallInfo,
    /// Media counters.
    pub rtp: Option<media::MediaStats>,
}

/// The `status` answer.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Registration state.
    pub registration: crate::sip::ua::RegState,
    /// Calls.
    pub calls: Vec<CallStatus>,
}

type Reply = oneshot::Sender<serde_json::Value>;

/// Runs until `shutdown` resolves, then un-registers and hangs up (bounded
/// to a few seconds) and returns.
pub async fn run(
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), AgentError> {
    let local = settings.ua.local;
    let sock = UdpSocket::bind(local)
        .await
        .map_err(|e| AgentError::Bind(local, e))?;
    let (ctl_tx, mut ctl_rx) = mpsc::channel::<(Request, Reply)>(16);
    let listener = bind_control(&settings.socket)?;
    tokio::spawn(control_server(listener, ctl_tx));
    tracing::info!(%local, socket = %settings.socket.display(), "voipbridge running");

    let mut ua = Ua::new(settings.ua.clone());
    let mut media: BTreeMap<String, MediaHandle> = BTreeMap::new();
    let actions = ua.handle(Instant::now(), Input::Command(Command::Register));
    execute(actions, &sock, &settings, &mut media).await;

    tokio::pin!(shutdown);
    let mut stopping: Option<Instant> = None;
    let mut buf = vec![0u8; 65536];
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    loop {
        let wake = ua
            .next_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        let actions = tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, from)) => ua.handle(Instant::now(), Input::Datagram { from, data: buf[..n].to_vec() }),
                Err(e) => { tracing::debug!("SIP receive: {e}"); Vec::new() }
            },
            _ = tokio::time::sleep_until(wake) => ua.handle(Instant::now(), Input::Tick),
            Some((req, reply)) = ctl_rx.recv() => {
                let (actions, answer) = control(&mut ua, &media, req);
                let _ = reply.send(answer);
                actions
            }
            _ = &mut shutdown, if stopping.is_none() => {
                tracing::info!("shutting down: un-registering and hanging up");
                stopping = Some(Instant::now());
                ua.handle(Instant::now(), Input::Command(Command::Shutdown))
            }
            _ = poll.tick() => {
                let mut acts = Vec::new();
                for (id, h) in media.iter_mut() {
                    while let Ok(ev) = h.events().try_recv() {
                        match ev {
                            MediaEvent::DtmfReceived(d) => tracing::info!(call = %id, digit = %d, "DTMF"),
                            MediaEvent::RtpTimeout | MediaEvent::DeviceError(_) => {
                                tracing::warn!(call = %id, "{ev:?}: hanging up");
                                acts.push(id.clone());
                            }
                        }
                    }
                }
                acts.into_iter().flat_map(|id| ua.handle(Instant::now(), Input::Command(Command::Hangup(Some(id))))).collect()
            }
        };
        execute(actions, &sock, &settings, &mut media).await;
        if let Some(t) = stopping {
            if ua.finished() || t.elapsed() > Duration::from_secs(5) {
                break;
            }
        }
    }
    for (_, h) in std::mem::take(&mut media) {
        h.stop().await;
    }
    let _ = std::fs::remove_file(&settings.socket);
    tracing::info!("stopped");
    Ok(())
}

fn bind_control(path: &Path) -> Result<UnixListener, AgentError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |e| AgentError::Control(path.to_path_buf(), e);
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "another voipbridge is running",
        )));
    }
    let _ = std::fs::remove_file(path);
    let l = UnixListener::bind(path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    Ok(l)
}

async fn control_server(listener: UnixListener, tx: mpsc::Sender<(Request, Reply)>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let (rd, mut wr) = stream.into_split();
            let mut lines = BufReader::new(rd).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let answer = match serde_json::from_str::<Request>(&line) {
                    Ok(req) => {
                        let (rtx, rrx) = oneshot::channel();
                        if tx.send((req, rtx)).await.is_err() {
                            break;
                        }
                        rrx.await.unwrap_or_else(
                            |_| serde_json::json!({"ok": false, "error": "agent stopped"}),
                        )
                    }
                    Err(e) => {
                        serde_json::json!({"ok": false, "error": format!("bad request: {e}")})
                    }
                };
                let mut s = answer.to_string();
                s.push('\n');
                if wr.write_all(s.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
    }
}

fn control(
    ua: &mut Ua,
    media: &BTreeMap<String, MediaHandle>,
    req: Request,
) -> (Vec<Action>, serde_json::Value) {
    let now = Instant::now();
    let ok = serde_json::json!({"ok": true});
    match req {
        Request::Call { uri } => (ua.handle(now, Input::Command(Command::Call(uri))), ok),
        Request::Answer { call } => (ua.handle(now, Input::Command(Command::Answer(call))), ok),
        Request::Hangup { call } => (ua.handle(now, Input::Command(Command::Hangup(call))), ok),
        Request::Hold { on, call } => (ua.handle(now, Input::Command(Command::Hold(call, on))), ok),
        Request::Dtmf { digits, call } => {
            let h = match &call {
                Some(c) => media.get(c),
                None => media.values().next(),
            };
            let answer = match h.map(|h| h.send_dtmf(&digits)) {
                Some(Ok(())) => ok,
                Some(Err(e)) => serde_json::json!({"ok": false, "error": e.to_string()}),
                None => serde_json::json!({"ok": false, "error": "no active call"}),
            };
            (Vec::new(), answer)
        }
        Request::Status => {
            let calls = ua
                .calls(now)
                .into_iter()
                .map(|c| CallStatus {
                    rtp: media.get(&c.call_id).map(|h| h.stats()),
                    call: c,
                })
                .collect();
            let st = Status {
                registration: ua.reg_state(),
                calls,
            };
            (Vec::new(), serde_json::json!({"ok": true, "status": st}))
        }
    }
}

async fn execute(
    actions: Vec<Action>,
    sock: &UdpSocket,
    settings: &Settings,
    media: &mut BTreeMap<String, MediaHandle>,
) {
    for a in actions {
        match a {
            Action::Send { to, data } => {
                if let Err(e) = sock.send_to(&data, to).await {
                    tracing::warn!(%to, "SIP send failed: {e}");
                }
            }
            Action::StartMedia(id, m) => {
                let addr = SocketAddr::new(settings.ua.local.ip(), m.local_port);
                let params = MediaParams {
                    remote: m.remote,
                    codec: m.codec,
                    payload_type: m.payload_type,
                    ptime_ms: m.ptime,
                    telephone_event_pt: m.telephone_event,
                    direction: m.direction,
                    capture: settings
                        .capture
                        .get(m.slot)
                        .cloned()
                        .unwrap_or(media::AudioSpec::Null),
                    playback: settings
                        .playback
                        .get(m.slot)
                        .cloned()
                        .unwrap_or(media::AudioSpec::Null),
                    jitter_min_ms: settings.media.jitter_min_ms,
                    jitter_max_ms: settings.media.jitter_max_ms,
                    rtp_timeout_ms: settings.media.rtp_timeout_ms,
                };
                let started = match UdpSocket::bind(addr).await {
                    Ok(s) => media::start(params, s).await,
                    Err(e) => Err(media::MediaError::from(e)),
                };
                match started {
                    Ok(h) => {
                        media.insert(id, h);
                    }
                    Err(e) => tracing::error!(call = %id, "cannot start media on {addr}: {e}"),
                }
            }
            Action::UpdateMedia(id, remote, dir) => {
                if let Some(h) = media.get(&id) {
                    h.update(remote, dir);
                }
            }
            Action::StopMedia(id) => {
                if let Some(h) = media.remove(&id) {
                    h.stop().await;
                }
            }
            Action::Event(ev) => match &ev {
                Event::Call {
                    state,
                    code: Some(code),
                    reason,
                    peer,
                    ..
                } if *state == crate::sip::ua::CallState::Ended => {
                    tracing::warn!(%peer, code, reason = reason.as_deref().unwrap_or(""), "call ended")
                }
                _ => tracing::info!(event = %serde_json::to_string(&ev).unwrap_or_default()),
            },
        }
    }
}

/// Sends one control request to a running agent and returns its answer.
pub async fn request(socket: &Path, req: &Request) -> std::io::Result<serde_json::Value> {
    let stream = UnixStream::connect(socket).await?;
    let (rd, mut wr) = stream.into_split();
    let mut line = serde_json::to_string(req).map_err(std::io::Error::other)?;
    line.push('\n');
    wr.write_all(line.as_bytes()).await?;
    let mut lines = BufReader::new(rd).lines();
    let answer = lines
        .next_line()
        .await?
        .ok_or_else(|| std::io::Error::other("no answer"))?;
    serde_json::from_str(&answer).map_err(std::io::Error::other)
}
