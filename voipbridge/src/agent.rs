//! The tokio layer: owns the SIP socket, the clock, the control socket and
//! the calls' media, and drives the sans-IO [`Ua`].

use crate::config::Settings;
use crate::media::session::MediaEvent;
use crate::media::{self, MediaHandle, MediaParams};
use crate::sip::stream::{error_response, StreamFramer};
use crate::sip::ua::{uri_addr, uri_host_port, Action, Command, Event, Input, Transport, Ua};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket, UnixListener, UnixStream};
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
    /// The registrar's host name did not resolve.
    #[error("cannot resolve the registrar {0}: {1}")]
    Resolve(String, std::io::Error),
}

/// How long one host name lookup may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Resolves `host` through the system resolver (A/AAAA, as getaddrinfo
/// does: /etc/hosts, then DNS), preferring an address of `local`'s family.
pub async fn resolve(host: &str, port: u16, local: IpAddr) -> std::io::Result<SocketAddr> {
    let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "lookup timed out"))??;
    let addrs: Vec<SocketAddr> = found.collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4() == local.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))
}

/// Where to send the INVITE of a call to `uri` when its host is a name and
/// no registrar (outbound proxy) is configured; `Ok(None)`: nothing to resolve.
async fn resolve_call_target(uri: &str, settings: &Settings) -> Result<Option<SocketAddr>, String> {
    if settings.ua.registrar.is_some() {
        return Ok(None);
    }
    let uri = if uri.starts_with("sip:") || uri.starts_with("sips:") {
        uri.to_string()
    } else {
        format!("sip:{uri}")
    };
    if uri_addr(&uri).is_some() {
        return Ok(None);
    }
    let Some((host, port)) = uri_host_port(&uri) else {
        return Ok(None);
    };
    let addr = resolve(&host, port, settings.ua.local.ip())
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    tracing::info!(%host, %addr, "call target resolved");
    Ok(Some(addr))
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
    mut settings: Settings,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), AgentError> {
    let local = settings.ua.local;
    if let Some((host, port)) = settings.registrar_name.clone() {
        let addr = resolve(&host, port, local.ip())
            .await
            .map_err(|e| AgentError::Resolve(format!("{host}:{port}"), e))?;
        tracing::info!(%host, %addr, "registrar resolved");
        settings.ua.registrar = Some(addr);
    }
    let (net_tx, mut net_rx) = mpsc::channel::<NetEvent>(256);
    let mut io = SipIo::bind(local, settings.ua.transport, net_tx).await?;
    let (ctl_tx, mut ctl_rx) = mpsc::channel::<(Request, Reply)>(16);
    let listener = bind_control(&settings.socket)?;
    tokio::spawn(control_server(listener, ctl_tx));
    tracing::info!(%local, transport = ?settings.ua.transport, socket = %settings.socket.display(), "voipbridge running");

    let mut ua = Ua::new(settings.ua.clone());
    let mut media: BTreeMap<String, MediaHandle> = BTreeMap::new();
    let actions = ua.handle(Instant::now(), Input::Command(Command::Register));
    execute(actions, &mut io, &settings, &mut media).await;

    tokio::pin!(shutdown);
    let mut stopping: Option<Instant> = None;
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    loop {
        let wake = ua
            .next_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        let actions = tokio::select! {
            Some(ev) = net_rx.recv() => match io.on_event(ev) {
                Some(input) => ua.handle(Instant::now(), input),
                None => Vec::new(),
            },
            _ = tokio::time::sleep_until(wake) => ua.handle(Instant::now(), Input::Tick),
            Some((req, reply)) = ctl_rx.recv() => {
                let target = match &req {
                    Request::Call { uri } => resolve_call_target(uri, &settings).await,
                    _ => Ok(None),
                };
                let (actions, answer) = match target {
                    Ok(dest) => control(&mut ua, &media, req, dest),
                    Err(e) => {
                        tracing::warn!("{e}");
                        (Vec::new(), serde_json::json!({"ok": false, "error": e}))
                    }
                };
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
        execute(actions, &mut io, &settings, &mut media).await;
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
    call_dest: Option<SocketAddr>,
) -> (Vec<Action>, serde_json::Value) {
    let now = Instant::now();
    let ok = serde_json::json!({"ok": true});
    match req {
        Request::Call { uri } => {
            let cmd = match call_dest {
                Some(dest) => Command::CallAt(uri, dest),
                None => Command::Call(uri),
            };
            (ua.handle(now, Input::Command(cmd)), ok)
        }
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
    io: &mut SipIo,
    settings: &Settings,
    media: &mut BTreeMap<String, MediaHandle>,
) {
    for a in actions {
        match a {
            Action::Send { to, data } => io.send(to, data).await,
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

/// What the network tasks tell the agent's loop.
#[derive(Debug)]
enum NetEvent {
    /// One SIP message from `from` (a datagram, or framed from a stream).
    Message { from: SocketAddr, data: Vec<u8> },
    /// A stream connection was accepted; its writer channel.
    Accepted(SocketAddr, mpsc::UnboundedSender<Vec<u8>>),
    /// A connection to this address could not be made or broke while writing.
    Failed(SocketAddr),
    /// A stream connection ended.
    Closed(SocketAddr),
}

/// How long a TCP connect may take before its transactions fail (503).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The SIP transport's sockets: one UDP socket, or a TCP listener and the
/// open connections, keyed by peer address (RFC 3261 18: a response goes
/// back on the connection its request came in on, which is the connection
/// keyed by the request's source).
enum SipIo {
    Udp(Arc<UdpSocket>),
    Tcp {
        local: SocketAddr,
        conns: HashMap<SocketAddr, mpsc::UnboundedSender<Vec<u8>>>,
        events: mpsc::Sender<NetEvent>,
    },
}

impl SipIo {
    async fn bind(
        local: SocketAddr,
        transport: Transport,
        events: mpsc::Sender<NetEvent>,
    ) -> Result<SipIo, AgentError> {
        let bind_err = |e| AgentError::Bind(local, e);
        match transport {
            Transport::Udp => {
                let sock = Arc::new(UdpSocket::bind(local).await.map_err(bind_err)?);
                tokio::spawn(udp_receiver(sock.clone(), events));
                Ok(SipIo::Udp(sock))
            }
            Transport::Tcp => {
                let listener = TcpListener::bind(local).await.map_err(bind_err)?;
                tokio::spawn(tcp_acceptor(listener, events.clone()));
                Ok(SipIo::Tcp {
                    local,
                    conns: HashMap::new(),
                    events,
                })
            }
        }
    }

    /// Bookkeeping of a network event; the UA input it carries, if any.
    fn on_event(&mut self, ev: NetEvent) -> Option<Input> {
        match ev {
            NetEvent::Message { from, data } => Some(Input::Datagram { from, data }),
            NetEvent::Accepted(peer, tx) => {
                if let SipIo::Tcp { conns, .. } = self {
                    tracing::debug!(%peer, "TCP connection accepted");
                    conns.insert(peer, tx);
                }
                None
            }
            NetEvent::Closed(peer) => {
                if let SipIo::Tcp { conns, .. } = self {
                    // Only if that connection is gone: a new one to the same peer may exist.
                    if conns.get(&peer).is_some_and(|tx| tx.is_closed()) {
                        tracing::debug!(%peer, "TCP connection closed");
                        conns.remove(&peer);
                    }
                }
                None
            }
            NetEvent::Failed(to) => {
                if let SipIo::Tcp { conns, .. } = self {
                    if conns.get(&to).is_some_and(|tx| tx.is_closed()) {
                        conns.remove(&to);
                    }
                }
                Some(Input::TransportError { to })
            }
        }
    }

    async fn send(&mut self, to: SocketAddr, data: Vec<u8>) {
        match self {
            SipIo::Udp(sock) => {
                if let Err(e) = sock.send_to(&data, to).await {
                    tracing::warn!(%to, "SIP send failed: {e}");
                }
            }
            SipIo::Tcp {
                local,
                conns,
                events,
            } => {
                let data = match conns.get(&to) {
                    Some(tx) => match tx.send(data) {
                        Ok(()) => return,
                        Err(e) => e.0, // the connection ended: open a new one
                    },
                    None => data,
                };
                let (tx, rx) = mpsc::unbounded_channel();
                let _ = tx.send(data);
                conns.insert(to, tx);
                tracing::debug!(%to, "opening a TCP connection");
                tokio::spawn(tcp_connect(local.ip(), to, rx, events.clone()));
            }
        }
    }
}

async fn udp_receiver(sock: Arc<UdpSocket>, events: mpsc::Sender<NetEvent>) {
    let mut buf = vec![0u8; 65536];
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, from)) => {
                let data = buf.get(..n).unwrap_or_default().to_vec();
                if events.send(NetEvent::Message { from, data }).await.is_err() {
                    return;
                }
            }
            Err(e) => tracing::debug!("SIP receive: {e}"),
        }
    }
}

async fn tcp_acceptor(listener: TcpListener, events: mpsc::Sender<NetEvent>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("TCP accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        // Announced before the connection's first message can be queued behind it.
        if events.send(NetEvent::Accepted(peer, tx)).await.is_err() {
            return;
        }
        tokio::spawn(tcp_connection(stream, peer, rx, events.clone()));
    }
}

async fn tcp_connect(
    local_ip: std::net::IpAddr,
    to: SocketAddr,
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
    events: mpsc::Sender<NetEvent>,
) {
    let connect = async {
        let sock = if to.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }?;
        if local_ip.is_ipv4() == to.is_ipv4() {
            sock.bind(SocketAddr::new(local_ip, 0))?;
        }
        sock.connect(to).await
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(stream)) => tcp_connection(stream, to, rx, events).await,
        Ok(Err(e)) => {
            tracing::warn!(%to, "TCP connect failed: {e}");
            drop(rx);
            let _ = events.send(NetEvent::Failed(to)).await;
        }
        Err(_) => {
            tracing::warn!(%to, "TCP connect timed out");
            drop(rx);
            let _ = events.send(NetEvent::Failed(to)).await;
        }
    }
}

/// One TCP connection: writes what the agent queues, frames what arrives.
/// A framing error gets its 400/513 (when the head was a request) and closes
/// the connection.
async fn tcp_connection(
    stream: TcpStream,
    peer: SocketAddr,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    events: mpsc::Sender<NetEvent>,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let mut framer = StreamFramer::default();
    let mut buf = vec![0u8; 16384];
    let mut write_failed = false;
    'conn: loop {
        tokio::select! {
            r = rd.read(&mut buf) => {
                let n = match r {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => { tracing::debug!(%peer, "TCP read: {e}"); break; }
                };
                framer.push(buf.get(..n).unwrap_or_default());
                while let Some(m) = framer.next_message() {
                    match m {
                        Ok(data) => {
                            if events.send(NetEvent::Message { from: peer, data }).await.is_err() {
                                break 'conn;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(%peer, "SIP framing error: {e}; closing the connection");
                            if let Some(resp) = error_response(&e) {
                                let _ = wr.write_all(&resp).await;
                            }
                            break 'conn;
                        }
                    }
                }
            }
            m = rx.recv() => match m {
                Some(data) => {
                    if let Err(e) = wr.write_all(&data).await {
                        tracing::warn!(%peer, "TCP write: {e}");
                        write_failed = true;
                        break;
                    }
                }
                None => break,
            },
        }
    }
    let _ = wr.shutdown().await;
    rx.close();
    drop(rx);
    let ev = if write_failed {
        NetEvent::Failed(peer)
    } else {
        NetEvent::Closed(peer)
    };
    let _ = events.send(ev).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn localhost_resolves_to_the_loopback_of_our_family() {
        let v4 = resolve("localhost", 5060, IpAddr::from([127, 0, 0, 1]))
            .await
            .expect("localhost resolves");
        assert_eq!(v4, SocketAddr::from(([127, 0, 0, 1], 5060)));
        // An IP literal goes through unchanged.
        let lit = resolve("127.0.0.2", 7, IpAddr::from([127, 0, 0, 1])).await;
        assert_eq!(lit.ok(), Some(SocketAddr::from(([127, 0, 0, 2], 7))));
    }
}
