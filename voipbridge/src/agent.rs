//! The tokio layer: the event loop that owns the clock and the calls' media
//! and drives the sans-IO [`Ua`] with what the SIP transport
//! ([`crate::transport`]) and the control socket ([`crate::control`]) deliver.
//!
//! The loop never awaits anything slow: host name lookups, media start
//! (socket bind, ALSA open) and media stop (thread joins, device drain) run
//! as tasks whose results come back as [`Input`]s. Received messages go
//! through an [`Intake`] of three bounded queues ordered by
//! [`Ua::priority`]: the registrar / outbound proxy and anything about a
//! live call or our registration first, then cheap out-of-dialog requests
//! (OPTIONS), then new INVITEs; when a queue is full its newest messages
//! are dropped (UDP senders retransmit), so a flood of new INVITEs delays
//! neither a live call nor an OPTIONS ping.

use crate::config::Settings;
use crate::control::{bind_control, control_server, Reply};
use crate::media::{self, Direction, MediaHandle, MediaParams};
use crate::sip::ua::{uri_host_port, Action, Command, Event, Input, Lookup, Priority, Ua};
use crate::sip::uri::ServerUri;
use crate::transport::{NetEvent, SipIo, TransportConfig};
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

pub use crate::control::{request, CallStatus, Request, Status};

/// Errors that stop the agent.
#[derive(Debug, Error)]
pub enum AgentError {
    /// The SIP socket could not be bound.
    #[error("cannot listen for SIP on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// The control socket could not be created.
    #[error("control socket {0}: {1}")]
    Control(PathBuf, std::io::Error),
    /// A host name did not resolve.
    #[error("cannot resolve the registrar {0}: {1}")]
    Resolve(String, std::io::Error),
    /// The TLS configuration could not be loaded.
    #[error("[tls]: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// Least time between two re-registrations for a lost registrar flow.
const FLOW_RETRY: Duration = Duration::from_secs(30);

/// How long one host name lookup may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages handled per turn of the loop before timers, commands and
/// results get their turn again.
const BATCH: usize = 32;
/// Network events moved from the transport's channel into the intake per turn.
const DRAIN: usize = 1024;

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

/// The name a server's TLS certificate must carry (RFC 5922): its host
/// name as configured; for an IP literal, the domain of our address of
/// record when that is a name (the certificate of `example.org`'s
/// registrar names `example.org`), else the address itself.
fn server_tls_name(server: &ServerUri, aor: &str) -> String {
    if server.host.parse::<IpAddr>().is_err() {
        return server.host.clone();
    }
    match uri_host_port(aor) {
        Some((host, _)) if host.parse::<IpAddr>().is_err() => host,
        _ => server.host.clone(),
    }
}

/// Received inputs waiting for the UA, by priority, each queue bounded.
#[derive(Debug)]
pub struct Intake {
    queues: [VecDeque<Input>; 3],
    caps: [usize; 3],
    /// Messages dropped because their queue was full.
    pub dropped: u64,
    logged: u64,
}

impl Default for Intake {
    fn default() -> Intake {
        Intake::new([256, 512, 4096])
    }
}

impl Intake {
    /// Queues of these sizes: low, normal, high.
    pub fn new(caps: [usize; 3]) -> Intake {
        Intake {
            queues: Default::default(),
            caps,
            dropped: 0,
            logged: 0,
        }
    }

    fn index(p: Priority) -> usize {
        match p {
            Priority::Low => 0,
            Priority::Normal => 1,
            Priority::High => 2,
        }
    }

    /// Queues an input; false when its queue is full (it is dropped).
    pub fn push(&mut self, p: Priority, input: Input) -> bool {
        let i = Self::index(p);
        let (Some(q), Some(cap)) = (self.queues.get_mut(i), self.caps.get(i)) else {
            return false;
        };
        if q.len() >= *cap {
            self.dropped += 1;
            if self.dropped >= self.logged.saturating_mul(2).max(1) {
                self.logged = self.dropped;
                tracing::warn!(dropped = self.dropped, priority = ?p, "overloaded: dropping received messages");
            }
            return false;
        }
        q.push_back(input);
        true
    }

    /// The next input, highest priority first.
    pub fn pop(&mut self) -> Option<Input> {
        self.queues.iter_mut().rev().find_map(|q| q.pop_front())
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queues.iter().all(|q| q.is_empty())
    }

    /// Inputs waiting.
    pub fn len(&self) -> usize {
        self.queues.iter().map(|q| q.len()).sum()
    }
}

/// What a slow task reports back.
enum Done {
    /// A media start finished.
    Started(String, Result<MediaHandle, String>),
    /// A media stop finished.
    Stopped(String),
    /// A lookup of a host name finished.
    Resolved(Lookup, String, Result<SocketAddr, String>),
}

/// A call's media as the loop sees it.
enum Media {
    /// Its start task runs; what came meanwhile waits.
    Starting {
        stop: bool,
        update: Option<(SocketAddr, Direction)>,
    },
    Running(MediaHandle),
}

struct Loop {
    ua: Ua,
    io: SipIo,
    settings: Settings,
    media: BTreeMap<String, Media>,
    done_tx: mpsc::UnboundedSender<Done>,
    /// Where our REGISTERs go (the outbound proxy, else the registrar),
    /// once known: the flow RFC 5626 keeps alive.
    flow_server: Option<SocketAddr>,
}

/// Runs until `shutdown` resolves, then un-registers and hangs up (bounded
/// to a few seconds) and returns.
pub async fn run(
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), AgentError> {
    let local = settings.ua.local;
    if settings.srtp != crate::srtp::sdes::SrtpMode::Off && !settings.sdes_allowed {
        tracing::warn!(
            "[media] srtp = {:?}, but SDES keys are never sent over unencrypted signalling: calls use plain RTP (use [sip] transport = \"tls\", or srtp_over_udp = true)",
            settings.srtp
        );
    }
    let (net_tx, mut net_rx) = mpsc::channel::<NetEvent>(256);
    let tls = match &settings.tls {
        Some(t) => Some(crate::tls::TlsContext::new(t)?),
        None => None,
    };
    let tcfg = TransportConfig {
        local,
        kind: settings.transport.kind,
        limits: settings.transport.limits.clone(),
        ban: settings.transport.ban.clone(),
        exempt: settings.transport.exempt.clone(),
        tls,
        media_sockets: 2 * settings.ua.slots,
    };
    let mut io = SipIo::bind(tcfg, net_tx).await?;
    // Servers given as IP literals are known now; names when resolved (on_done).
    for server in [&settings.ua.registrar, &settings.ua.outbound_proxy]
        .into_iter()
        .flatten()
    {
        if let Some(addr) = server.addr {
            io.set_trusted(&[addr.ip()]);
            io.set_peer_name(addr, &server_tls_name(server, &settings.ua.aor));
        }
    }
    let (ctl_tx, mut ctl_rx) = mpsc::channel::<(Request, Reply)>(16);
    let group = match &settings.control_group {
        Some(name) => {
            let gid = crate::control::group_gid(name).map_err(|e| {
                AgentError::Control(settings.socket.clone(), std::io::Error::other(e))
            })?;
            Some((name.clone(), gid))
        }
        None => None,
    };
    let listener = bind_control(&settings.socket, group.as_ref().map(|g| g.1))?;
    let access = crate::control::Access::new(nix::unistd::geteuid().as_raw(), group);
    tokio::spawn(control_server(listener, access, ctl_tx));
    tracing::info!(%local, transport = ?settings.ua.transport, socket = %settings.socket.display(), "voipbridge running");

    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let mut lp = Loop {
        ua: Ua::new(settings.ua.clone()),
        io,
        settings,
        media: BTreeMap::new(),
        done_tx,
        flow_server: None,
    };
    lp.flow_server = match lp.flow_lookup() {
        Lookup::OutboundProxy => lp.settings.ua.outbound_proxy.as_ref(),
        _ => lp.settings.ua.registrar.as_ref(),
    }
    .and_then(|s| s.addr)
    .filter(|_| lp.settings.ua.registrar.is_some());
    let actions = lp
        .ua
        .handle(Instant::now(), Input::Command(Command::Register));
    lp.execute(actions).await;

    let mut intake = Intake::default();
    tokio::pin!(shutdown);
    let mut stopping: Option<Instant> = None;
    let mut last_flow_retry: Option<Instant> = None;
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    loop {
        // Move what the transport delivered into the intake, by priority.
        for _ in 0..DRAIN {
            match net_rx.try_recv() {
                Ok(ev) => lp.take(&mut intake, ev),
                Err(_) => break,
            }
        }
        let wake = lp
            .ua
            .next_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        let actions = tokio::select! {
            biased;
            _ = &mut shutdown, if stopping.is_none() => {
                tracing::info!("shutting down: un-registering and hanging up");
                stopping = Some(Instant::now());
                lp.ua.handle(Instant::now(), Input::Command(Command::Shutdown))
            }
            Some(done) = done_rx.recv() => lp.on_done(done),
            Some((req, reply)) = ctl_rx.recv() => {
                let (actions, answer) = lp.control(req);
                let _ = reply.send(answer);
                actions
            }
            _ = tokio::time::sleep_until(wake) => lp.ua.handle(Instant::now(), Input::Tick),
            _ = std::future::ready(()), if !intake.is_empty() => {
                let mut actions = Vec::new();
                for _ in 0..BATCH {
                    let Some(input) = intake.pop() else { break };
                    actions.extend(lp.ua.handle(Instant::now(), input));
                }
                actions
            }
            Some(ev) = net_rx.recv() => {
                lp.take(&mut intake, ev);
                Vec::new()
            }
            _ = poll.tick() => lp.poll_media(),
        };
        lp.execute(actions).await;
        // Live calls' peers are not counted against the ban table's rate.
        lp.io.set_call_peers(lp.ua.call_peers());
        // RFC 5626 4.4: the flow to the registrar is gone (closed, or a
        // keep-alive pong missed): register again over a new connection,
        // at most once per FLOW_RETRY so a registrar that keeps closing
        // connections is not hammered.
        let lost = lp.io.take_lost_flows();
        if stopping.is_none()
            && lp.flow_server.is_some_and(|r| lost.contains(&r))
            && last_flow_retry.is_none_or(|t: Instant| t.elapsed() >= FLOW_RETRY)
        {
            tracing::warn!("the connection to the registrar is gone: registering again");
            last_flow_retry = Some(Instant::now());
            let actions = lp
                .ua
                .handle(Instant::now(), Input::Command(Command::Register));
            lp.execute(actions).await;
        }
        if let Some(t) = stopping {
            if lp.ua.finished() || t.elapsed() > Duration::from_secs(5) {
                break;
            }
        }
    }
    for (_, m) in std::mem::take(&mut lp.media) {
        if let Media::Running(h) = m {
            h.stop().await;
        }
    }
    let _ = std::fs::remove_file(&lp.settings.socket);
    tracing::info!("stopped");
    Ok(())
}

impl Loop {
    /// A network event into the intake (transport errors go first).
    fn take(&mut self, intake: &mut Intake, ev: NetEvent) {
        let Some(input) = self.io.on_event(ev) else {
            return;
        };
        let p = match &input {
            Input::Datagram { from, data } => self.ua.priority(*from, data),
            _ => Priority::High,
        };
        intake.push(p, input);
    }

    fn on_done(&mut self, done: Done) -> Vec<Action> {
        let now = Instant::now();
        match done {
            Done::Resolved(lookup, host, result) => {
                if let Ok(addr) = &result {
                    self.resolved(&lookup, &host, *addr);
                }
                self.ua.handle(now, Input::Resolved { lookup, result })
            }
            Done::Stopped(call_id) => self.ua.handle(now, Input::MediaStopped { call_id }),
            Done::Started(id, result) => {
                let entry = self.media.remove(&id);
                let (stop, update) = match entry {
                    Some(Media::Starting { stop, update }) => (stop, update),
                    _ => (true, None),
                };
                match result {
                    Ok(h) if stop => {
                        let acts = self.ua.handle(
                            now,
                            Input::MediaStarted {
                                call_id: id.clone(),
                                result: Ok(()),
                            },
                        );
                        self.spawn_stop(id, h);
                        acts
                    }
                    Ok(h) => {
                        if let Some((remote, dir)) = update {
                            h.update(remote, dir);
                        }
                        self.media.insert(id.clone(), Media::Running(h));
                        self.ua.handle(
                            now,
                            Input::MediaStarted {
                                call_id: id,
                                result: Ok(()),
                            },
                        )
                    }
                    Err(e) => {
                        let mut acts = self.ua.handle(
                            now,
                            Input::MediaStarted {
                                call_id: id.clone(),
                                result: Err(e),
                            },
                        );
                        if stop {
                            acts.extend(self.ua.handle(now, Input::MediaStopped { call_id: id }));
                        }
                        acts
                    }
                }
            }
        }
    }

    /// The server our REGISTERs are sent to.
    fn flow_lookup(&self) -> Lookup {
        if self.settings.ua.outbound_proxy.is_some() {
            Lookup::OutboundProxy
        } else {
            Lookup::Registrar
        }
    }

    /// What the transport must know of a resolved address: the name its
    /// TLS certificate must carry, and (for the registrar and outbound
    /// proxy) that it is never banned and may exceed the connection limits.
    fn resolved(&mut self, lookup: &Lookup, host: &str, addr: SocketAddr) {
        let server = match lookup {
            Lookup::Registrar => self.settings.ua.registrar.as_ref(),
            Lookup::OutboundProxy => self.settings.ua.outbound_proxy.as_ref(),
            Lookup::Call(_) => None,
        };
        match server {
            Some(s) => {
                self.io.set_trusted(&[addr.ip()]);
                self.io
                    .set_peer_name(addr, &server_tls_name(s, &self.settings.ua.aor));
                if *lookup == self.flow_lookup() {
                    self.flow_server = Some(addr);
                }
            }
            None => self.io.set_peer_name(addr, host),
        }
    }

    fn spawn_stop(&self, id: String, h: MediaHandle) {
        let done = self.done_tx.clone();
        tokio::spawn(async move {
            h.stop().await;
            let _ = done.send(Done::Stopped(id));
        });
    }

    /// Media events (RTP timeout, device error, DTMF) as UA inputs.
    fn poll_media(&mut self) -> Vec<Action> {
        let mut events = Vec::new();
        for (id, m) in self.media.iter_mut() {
            if let Media::Running(h) = m {
                while let Ok(ev) = h.events().try_recv() {
                    events.push((id.clone(), ev));
                }
            }
        }
        let now = Instant::now();
        events
            .into_iter()
            .flat_map(|(call_id, event)| self.ua.handle(now, Input::Media { call_id, event }))
            .collect()
    }

    fn control(&mut self, req: Request) -> (Vec<Action>, serde_json::Value) {
        let now = Instant::now();
        let ok = serde_json::json!({"ok": true});
        let ua = &mut self.ua;
        match req {
            Request::Call { uri } => {
                // A call straight to an IP literal (no server to route it):
                // TLS checks the certificate for that address, not a name
                // an earlier call to a host name left for it.
                if self.settings.ua.registrar.is_none() && self.settings.ua.outbound_proxy.is_none()
                {
                    if let Some(addr) = crate::sip::ua::uri_addr(&uri) {
                        self.io.set_peer_name(addr, &addr.ip().to_string());
                    }
                }
                let actions = ua.handle(now, Input::Command(Command::Call(uri)));
                let placed = actions.iter().find_map(|a| match a {
                    Action::Event(Event::Call {
                        call_id,
                        code: None,
                        ..
                    }) if !call_id.is_empty() => Some(call_id.clone()),
                    _ => None,
                });
                let failed = actions.iter().find_map(|a| match a {
                    Action::Event(Event::Call {
                        call_id,
                        code: Some(code),
                        reason,
                        ..
                    }) if call_id.is_empty() => Some(format!(
                        "call not placed ({code}): {}",
                        reason.as_deref().unwrap_or("")
                    )),
                    _ => None,
                });
                let answer = match (placed, failed) {
                    (Some(id), _) => serde_json::json!({"ok": true, "call": id}),
                    (None, Some(e)) => serde_json::json!({"ok": false, "error": e}),
                    (None, None) => ok,
                };
                (actions, answer)
            }
            Request::Answer { call } => (ua.handle(now, Input::Command(Command::Answer(call))), ok),
            Request::Hangup { call } => (ua.handle(now, Input::Command(Command::Hangup(call))), ok),
            Request::Hold { on, call } => {
                (ua.handle(now, Input::Command(Command::Hold(call, on))), ok)
            }
            Request::Dtmf { digits, call } => {
                let h = match &call {
                    Some(c) => self.media.get(c),
                    None => self.media.values().find(|m| matches!(m, Media::Running(_))),
                };
                let answer = match h {
                    Some(Media::Running(h)) => match h.send_dtmf(&digits) {
                        Ok(()) => ok,
                        Err(e) => serde_json::json!({"ok": false, "error": e.to_string()}),
                    },
                    _ => serde_json::json!({"ok": false, "error": "no active call"}),
                };
                (Vec::new(), answer)
            }
            Request::Status => {
                let calls = ua
                    .calls(now)
                    .into_iter()
                    .map(|c| CallStatus {
                        rtp: match self.media.get(&c.call_id) {
                            Some(Media::Running(h)) => Some(h.stats()),
                            _ => None,
                        },
                        call: c,
                    })
                    .collect();
                let st = Status {
                    registration: ua.reg_state(),
                    calls,
                    transactions: ua.tx_stats(),
                    transport: self.io.status(),
                    srtp: self.settings.srtp,
                    sdes_allowed: self.settings.sdes_allowed,
                };
                (Vec::new(), serde_json::json!({"ok": true, "status": st}))
            }
            Request::Ban { addr, seconds } => {
                let answer = match addr.parse::<IpAddr>() {
                    Ok(ip) => match self.io.ban(ip, seconds) {
                        Ok(n) => {
                            serde_json::json!({"ok": true, "banned": n.source.to_string(), "seconds": n.duration.as_secs()})
                        }
                        Err(e) => serde_json::json!({"ok": false, "error": e}),
                    },
                    Err(_) => {
                        serde_json::json!({"ok": false, "error": format!("'{addr}' is not an IP address")})
                    }
                };
                (Vec::new(), answer)
            }
            Request::Unban { addr } => {
                let answer = match addr.parse::<IpAddr>() {
                    Ok(ip) if self.io.unban(ip) => serde_json::json!({"ok": true}),
                    Ok(_) => {
                        serde_json::json!({"ok": false, "error": format!("{addr} is not banned")})
                    }
                    Err(_) => {
                        serde_json::json!({"ok": false, "error": format!("'{addr}' is not an IP address")})
                    }
                };
                (Vec::new(), answer)
            }
        }
    }

    async fn execute(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send { to, data } => self.io.send(to, data).await,
                Action::StartMedia(id, m) => self.start_media(id, m),
                Action::UpdateMedia(id, remote, dir) => match self.media.get_mut(&id) {
                    Some(Media::Running(h)) => h.update(remote, dir),
                    Some(Media::Starting { update, .. }) => *update = Some((remote, dir)),
                    None => {}
                },
                Action::StopMedia(id) => match self.media.remove(&id) {
                    Some(Media::Running(h)) => self.spawn_stop(id, h),
                    Some(Media::Starting { update, .. }) => {
                        self.media
                            .insert(id, Media::Starting { stop: true, update });
                    }
                    None => {
                        let _ = self.done_tx.send(Done::Stopped(id));
                    }
                },
                Action::Resolve { lookup, host, port } => {
                    let local = self.settings.ua.local.ip();
                    let done = self.done_tx.clone();
                    tokio::spawn(async move {
                        let r = resolve(&host, port, local).await.map_err(|e| e.to_string());
                        if let (Lookup::Call(_), Ok(addr)) = (&lookup, &r) {
                            tracing::info!(%host, %addr, "call target resolved");
                        }
                        let _ = done.send(Done::Resolved(lookup, host, r));
                    });
                }
                Action::Abuse { source, kind } => {
                    tracing::debug!(%source, ?kind, "abuse");
                    self.io.record_abuse(source.ip(), kind);
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

    fn start_media(&mut self, id: String, m: crate::sip::ua::MediaOffer) {
        let s = &self.settings;
        let addr = SocketAddr::new(s.ua.local.ip(), m.local_port);
        let mut params = MediaParams {
            remote: m.remote,
            codec: m.codec,
            payload_type: m.payload_type,
            ptime_ms: m.ptime,
            telephone_event_pt: m.telephone_event,
            direction: m.direction,
            capture: s
                .capture
                .get(m.slot)
                .cloned()
                .unwrap_or(media::AudioSpec::Null),
            playback: s
                .playback
                .get(m.slot)
                .cloned()
                .unwrap_or(media::AudioSpec::Null),
            jitter_min_ms: s.media.jitter_min_ms,
            jitter_max_ms: s.media.jitter_max_ms,
            rtp_timeout_ms: s.media.rtp_timeout_ms,
            // The UA's decision: [media] latch and a call the registrar /
            // outbound proxy routed.
            latch: m.latch,
            // SRTP/SRTCP with the keys SDES negotiated for this call.
            #[cfg(feature = "srtp")]
            transform: m.crypto.map(crate::srtp::transform_factory),
            // Without the transform, config refuses [media] srtp other than
            // "off", so no call negotiates keys.
            #[cfg(not(feature = "srtp"))]
            transform: None,
            period_ms: s.audio.period_ms,
            buffer_ms: s.audio.buffer_ms,
            ..MediaParams::default()
        };
        // Taken by the engine thread when it gets this call.
        crate::media::engine::set_realtime_priority(s.audio.realtime_priority);
        self.media.insert(
            id.clone(),
            Media::Starting {
                stop: false,
                update: None,
            },
        );
        let done = self.done_tx.clone();
        let dsp = s.dsp;
        tokio::spawn(async move {
            params.processors = call_processors(&id, dsp, &params.capture, &params.playback).await;
            let started = match UdpSocket::bind(addr).await {
                Ok(sock) => media::start(params, sock).await,
                Err(e) => Err(media::MediaError::from(e)),
            };
            let r = started.map_err(|e| {
                tracing::error!(call = %id, "cannot start media on {addr}: {e}");
                e.to_string()
            });
            let _ = done.send(Done::Started(id, r));
        });
    }
}

/// A call's capture processors (`[audio] echo_cancel`, `noise_suppression`):
/// "auto" reads the card's routing controls, which is done off the runtime.
async fn call_processors(
    id: &str,
    dsp: crate::dsp::DspSettings,
    capture: &media::AudioSpec,
    playback: &media::AudioSpec,
) -> Vec<media::hooks::ProcessorFactory> {
    let (c, p) = (capture.clone(), playback.clone());
    let procs = tokio::task::spawn_blocking(move || crate::dsp::processors_for(&dsp, &c, &p))
        .await
        .unwrap_or_else(|e| {
            tracing::error!(call = %id, "echo canceller decision failed: {e}");
            Vec::new()
        });
    if procs.is_empty() {
        if dsp.noise_suppression {
            tracing::warn!(call = %id, echo_cancel = %dsp.echo_cancel, %capture, %playback, "noise suppression runs with the echo canceller only: off for this call");
        } else {
            tracing::debug!(call = %id, echo_cancel = %dsp.echo_cancel, "no echo canceller for this call");
        }
    } else {
        tracing::info!(call = %id, echo_cancel = %dsp.echo_cancel, noise_suppression = dsp.noise_suppression, %capture, %playback, "echo canceller on (aec3)");
    }
    procs
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

    fn dgram(n: u8) -> Input {
        Input::Datagram {
            from: SocketAddr::from(([127, 0, 0, n], 5060)),
            data: vec![n],
        }
    }

    #[test]
    fn intake_serves_high_first_and_sheds_the_full_queue_only() {
        let mut i = Intake::new([2, 2, 2]);
        assert!(i.push(Priority::Low, dgram(1)));
        assert!(i.push(Priority::Low, dgram(2)));
        assert!(!i.push(Priority::Low, dgram(3)), "low queue full");
        assert!(i.push(Priority::Normal, dgram(4)));
        assert!(i.push(Priority::High, dgram(5)));
        assert_eq!(i.dropped, 1);
        assert_eq!(i.len(), 4);
        let order: Vec<u8> = std::iter::from_fn(|| i.pop())
            .map(|x| match x {
                Input::Datagram { data, .. } => data[0],
                _ => 0,
            })
            .collect();
        assert_eq!(order, vec![5, 4, 1, 2]);
        assert!(i.is_empty());
    }
}
