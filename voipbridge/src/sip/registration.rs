//! Registration (RFC 3261 10) with digest authentication (22; RFC 7616,
//! RFC 8760).
//!
//! One Call-ID and From tag for the life of the agent, CSeq +1 per
//! REGISTER (10.2). The REGISTER goes to the outbound proxy when there is
//! one (with its Route), else to the registrar; its Request-URI is the
//! registrar's URI (or, for the older `host:port` form, our domain).
//!
//! Challenges: every `WWW-Authenticate` / `Proxy-Authenticate` is read and
//! the strongest algorithm per realm answered ([`Authenticator`]). A 401 or
//! 407 to a REGISTER that carried credentials means
//! * `stale=true`: the nonce expired, the password is right: answer again;
//! * a *new* nonce without `stale`: the registrar may have restarted (its
//!   new instance does not know our nonce; kamailio, Asterisk and others
//!   then challenge afresh without `stale`) — answer it once;
//! * the *same* nonce, or a second new nonce in a row: the credentials are
//!   wrong: fail with a clear message and retry after a back-off.
//!
//! So a registrar restart costs one extra REGISTER, whether it happens
//! between two refreshes or between a challenge and its answer, and a wrong
//! password is reported after at most two authenticated attempts.
//!
//! Refresh at 80 % of the granted lifetime; failures back off 5 s doubling
//! to 5 min (at least the server's `Retry-After`). A registrar named by a
//! host is resolved again after a timeout or transport error.

use super::digest::{Authenticator, Credentials};
use super::message::{addr_uri, param, Builder, Message};
use super::transaction::TxId;
use super::ua::{Action, Env, Event, Lookup, Owner, RegState, USER_AGENT};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

const BACKOFF_MIN: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Challenges answered in a row (stale or new realm) before giving up.
const MAX_CHALLENGES: u32 = 6;

/// The registration client.
#[derive(Debug)]
pub(crate) struct Registration {
    state: RegState,
    call_id: String,
    from_tag: String,
    cseq: u32,
    tx: Option<TxId>,
    /// The pending REGISTER carried credentials.
    sent_auth: bool,
    /// The pending REGISTER is an un-REGISTER (Expires: 0).
    unregistering: bool,
    /// When to REGISTER next (refresh or retry).
    next_at: Option<Instant>,
    backoff: Duration,
    expires: u32,
    auth: Authenticator,
    /// Authenticated REGISTERs refused (not stale) since the last success.
    refused: u32,
    /// Challenges answered since the last success or failure.
    challenges: u32,
    /// The registrar accepted our credentials at least once.
    verified: bool,
    /// Lookups of the servers pending.
    resolving: u8,
    /// Start REGISTERing once the server's address is known.
    wanted: bool,
}

impl Registration {
    pub fn new(env: &mut Env) -> Registration {
        Registration {
            state: if env.cfg.registrar.is_some() {
                RegState::Unregistered
            } else {
                RegState::Disabled
            },
            call_id: format!("{}@voipbridge", env.token(20)),
            from_tag: env.token(10),
            cseq: 0,
            tx: None,
            sent_auth: false,
            unregistering: false,
            next_at: None,
            backoff: BACKOFF_MIN,
            expires: env.cfg.expires,
            auth: Authenticator::default(),
            refused: 0,
            challenges: 0,
            verified: false,
            resolving: 0,
            wanted: false,
        }
    }

    pub fn state(&self) -> RegState {
        self.state
    }

    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// A REGISTER is in flight.
    pub fn busy(&self) -> bool {
        self.tx.is_some()
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        self.next_at
    }

    /// The server REGISTERs go to: the outbound proxy, else the registrar.
    fn target(env: &Env) -> Option<(SocketAddr, Option<String>)> {
        match (&env.servers.outbound, &env.servers.registrar) {
            (Some(p), Some(_)) => p.addr.map(|a| (a, Some(p.route()))),
            (None, Some(r)) => r.addr.map(|a| (a, None)),
            _ => None,
        }
    }

    /// Asks the I/O layer for the servers' addresses: those still missing,
    /// or with `again`, every server known by name (it may have moved).
    fn resolve(&mut self, env: &mut Env, again: bool) {
        if self.resolving > 0 {
            return;
        }
        for (lookup, s) in [
            (Lookup::Registrar, &env.servers.registrar),
            (Lookup::OutboundProxy, &env.servers.outbound),
        ] {
            let Some(s) = s.as_ref() else { continue };
            let named = s.host.parse::<IpAddr>().is_err();
            if s.addr.is_none() || again && named {
                self.resolving += 1;
                env.out.push(Action::Resolve {
                    lookup,
                    host: s.host.clone(),
                    port: s.port,
                });
            }
        }
    }

    /// `register` command: start registering.
    pub fn start(&mut self, env: &mut Env, now: Instant) {
        if env.cfg.registrar.is_none() {
            return;
        }
        self.wanted = true;
        self.send(env, now, self.expires);
    }

    pub fn on_resolved(&mut self, env: &mut Env, now: Instant) {
        self.resolving = self.resolving.saturating_sub(1);
        if self.resolving > 0 || !self.wanted || self.tx.is_some() {
            return;
        }
        if matches!(self.state, RegState::Registered) || self.next_at.is_some() {
            return; // a re-lookup after a failure: the retry timer sends
        }
        if Self::target(env).is_some() {
            self.send(env, now, self.expires);
        } else {
            self.fail(env, now, 503, "cannot resolve the registrar", false);
        }
    }

    fn send(&mut self, env: &mut Env, now: Instant, expires: u32) {
        let Some((dest, route)) = Self::target(env) else {
            self.resolve(env, false);
            return;
        };
        if let Some(tx) = self.tx.take() {
            env.txs.terminate(tx);
        }
        self.cseq += 1;
        let branch = env.branch();
        let ruri = match &env.servers.registrar {
            Some(r) if r.is_uri => r.uri.clone(),
            // RFC 3261 10.2 / RFC 5630 3.1.3: the registrar's domain, with
            // the AOR's scheme: a sips: AOR is registered with sips:.
            _ if env.cfg.aor.to_ascii_lowercase().starts_with("sips:") => {
                format!("sips:{}", env.cfg.domain())
            }
            _ => format!("sip:{}", env.cfg.domain()),
        };
        let mut b = Builder::request("REGISTER", &ruri)
            .header("Via", &env.via(&branch))
            .header("Max-Forwards", "70");
        if let Some(r) = &route {
            b = b.header("Route", r);
        }
        b = b
            .header("From", &format!("<{}>;tag={}", env.cfg.aor, self.from_tag))
            .header("To", &format!("<{}>", env.cfg.aor))
            .header("Call-ID", &self.call_id)
            .header("CSeq", &format!("{} REGISTER", self.cseq))
            .header("Contact", &env.contact())
            .header("Expires", &expires.to_string())
            .header("Allow", super::ua::ALLOW)
            .header("User-Agent", USER_AGENT);
        self.sent_auth = !self.auth.is_empty();
        if self.sent_auth {
            let cnonce = env.token(16);
            let creds = Credentials {
                user: &env.cfg.username,
                password: &env.cfg.password,
            };
            for (name, value) in self.auth.headers(&creds, "REGISTER", &ruri, b"", &cnonce) {
                b = b.header(name, &value);
            }
        }
        self.unregistering = expires == 0;
        if !self.unregistering {
            self.state = RegState::Registering;
        }
        self.next_at = None;
        self.tx = env.client_tx(now, dest, b.build(), &branch, "REGISTER", Owner::Register);
    }

    pub fn on_timer(&mut self, env: &mut Env, now: Instant) {
        if self.next_at.is_some_and(|t| now >= t) {
            self.next_at = None;
            self.send(env, now, self.expires);
        }
    }

    pub fn shutdown(&mut self, env: &mut Env, now: Instant) {
        self.wanted = false;
        self.next_at = None;
        if matches!(self.state, RegState::Registered | RegState::Registering) {
            self.send(env, now, 0);
        } else if let Some(tx) = self.tx.take() {
            env.txs.terminate(tx);
        }
    }

    pub fn on_response(&mut self, env: &mut Env, now: Instant, tx: TxId, resp: &Message) {
        if self.tx != Some(tx) {
            return;
        }
        let code = resp.status.unwrap_or(0);
        if code < 200 {
            return;
        }
        self.tx = None;
        if self.unregistering {
            self.unregistering = false;
            self.state = if env.cfg.registrar.is_some() {
                RegState::Unregistered
            } else {
                RegState::Disabled
            };
            tracing::info!(code, "un-registered");
            env.out.push(Action::Event(Event::Unregistered));
            return;
        }
        match code {
            200..=299 => self.registered(env, now, resp),
            401 | 407 => self.challenged(env, now, resp, code),
            423 => {
                let min = resp
                    .header("min-expires")
                    .and_then(|m| m.trim().parse::<u32>().ok());
                match min {
                    Some(m) if m > self.expires && m <= 86400 => {
                        tracing::info!(min_expires = m, "registrar wants a longer lifetime");
                        self.expires = m;
                        self.send(env, now, m);
                    }
                    _ => self.fail(env, now, 423, "registrar refused every lifetime", true),
                }
            }
            _ => {
                let retry_after = resp
                    .header("retry-after")
                    .and_then(|r| r.split(['(', ';']).next()?.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                if let Some(r) = retry_after {
                    self.backoff = self.backoff.max(r.min(Duration::from_secs(3600)));
                }
                let reason = resp.reason.clone();
                self.fail(env, now, code, &reason, true);
            }
        }
    }

    fn registered(&mut self, env: &mut Env, now: Instant, resp: &Message) {
        // rport/received: re-register with the address the registrar sees (NAT).
        if let Some(via) = resp.top_via() {
            let rec = param(&via, "received").and_then(|r| r.parse::<IpAddr>().ok());
            let rport = param(&via, "rport").and_then(|r| r.parse::<u16>().ok());
            if rec.is_some() || rport.is_some() {
                let seen = SocketAddr::new(
                    rec.unwrap_or(env.contact_addr.ip()),
                    rport.unwrap_or(env.contact_addr.port()),
                );
                if seen != env.contact_addr && seen.ip() != env.cfg.local.ip() {
                    tracing::info!(%seen, "registrar sees us at another address: updating Contact");
                    env.contact_addr = seen;
                    self.send(env, now, self.expires);
                    return;
                }
            }
        }
        let ours = super::uri::fmt_addr(&env.contact_addr);
        let granted = resp
            .header_values("contact")
            .iter()
            .find(|c| addr_uri(c).contains(&ours))
            .and_then(|c| param(c, "expires"))
            .and_then(|e| e.parse().ok())
            .or_else(|| resp.expires())
            .unwrap_or(self.expires);
        if granted == 0 {
            self.fail(env, now, 200, "registrar granted no lifetime", true);
            return;
        }
        if self.refused > 0 || (self.verified && self.challenges > 1) {
            tracing::info!("re-authenticated with the registrar's new nonce (it had restarted)");
        }
        self.state = RegState::Registered;
        self.verified = true;
        self.refused = 0;
        self.challenges = 0;
        self.backoff = BACKOFF_MIN;
        let refresh = Duration::from_secs(u64::from(granted))
            .mul_f32(0.8)
            .max(Duration::from_secs(1));
        self.next_at = Some(now + refresh);
        tracing::info!(expires = granted, "registered");
        env.out
            .push(Action::Event(Event::Registered { expires: granted }));
    }

    fn challenged(&mut self, env: &mut Env, now: Instant, resp: &Message, code: u16) {
        let outcome = match self.auth.on_challenge(resp) {
            Ok(o) => o,
            Err(e) => {
                self.fail(env, now, code, &e.to_string(), true);
                return;
            }
        };
        self.challenges += 1;
        if self.challenges > MAX_CHALLENGES {
            self.fail(env, now, code, "too many challenges in a row", true);
            return;
        }
        if !self.sent_auth || outcome.new_realm {
            self.send(env, now, self.expires);
            return;
        }
        if outcome.stale {
            tracing::info!("registrar says our nonce is stale: answering its new one");
            self.send(env, now, self.expires);
            return;
        }
        self.refused += 1;
        if outcome.new_nonce && self.refused < 2 {
            tracing::info!(
                verified = self.verified,
                "registrar refused our credentials with a new nonce and no stale=true: it may have restarted, answering the new nonce once"
            );
            self.send(env, now, self.expires);
            return;
        }
        self.fail(
            env,
            now,
            code,
            "authentication failed: check username and password",
            true,
        );
    }

    pub fn on_failure(&mut self, env: &mut Env, now: Instant, tx: TxId, code: u16) {
        if self.tx != Some(tx) {
            return;
        }
        self.tx = None;
        if self.unregistering {
            self.unregistering = false;
            self.state = RegState::Unregistered;
            env.out.push(Action::Event(Event::Unregistered));
            return;
        }
        // A registrar known by name may have moved: look it up again (the
        // address in use stays until the answer, so its calls stay trusted).
        self.resolve(env, true);
        let why = if code == 503 {
            "cannot reach the registrar"
        } else {
            "registrar did not answer"
        };
        self.fail(env, now, code, why, false);
    }

    fn fail(&mut self, env: &mut Env, now: Instant, code: u16, reason: &str, forget_auth: bool) {
        tracing::error!(code, %reason, retry_in = ?self.backoff, "registration failed");
        self.state = RegState::Failed;
        if forget_auth {
            self.auth.clear();
        }
        self.refused = 0;
        self.challenges = 0;
        env.out.push(Action::Event(Event::RegistrationFailed {
            code,
            reason: reason.to_string(),
        }));
        if self.wanted {
            self.next_at = Some(now + self.backoff);
            self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        }
    }
}
