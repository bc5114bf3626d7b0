//! Who may ring the board (issue 14): the answer policy for new INVITEs.
//!
//! A call is answered only when it
//! 1. arrives from the registrar or outbound proxy we are configured with —
//!    the datagram's (or connection's) source address is that server's
//!    resolved address (IP and port over UDP; the IP over TCP/TLS, whose
//!    proxies connect from ephemeral ports). Headers (Via, Record-Route,
//!    From) are written by the sender and prove nothing, so they are not
//!    consulted; a forged UDP source cannot complete the call because media
//!    starts only on the ACK, which must carry the To tag of a 200 the
//!    forger never sees;
//! 2. or comes from a caller on `[call] allow`, matched exactly on the From
//!    URI's `user@host` (user case-sensitive, host not, no port or
//!    parameters, RFC 3261 19.1.4) — the From header is unauthenticated,
//!    so this is a convenience for closed networks, not authentication;
//! 3. or the configuration says `accept = "any"` (dangerous: any host that
//!    can reach the SIP port gets the microphone).
//!
//! Everything else is refused before it touches a substream: 403 (the same
//! answer for an unknown user and an unauthorised caller, so a scanner
//! learns nothing), or nothing at all with `stealth = true`. Requests whose
//! Request-URI names another user than ours are refused the same way (a
//! server-routed call is not checked: the server may rewrite it).

use super::message::Message;
use super::uri::user_at_host;
use serde::Serialize;

/// `[call] accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Accept {
    /// The registrar / outbound proxy and the allow list (the default).
    #[default]
    Trusted,
    /// Anyone (dangerous).
    Any,
}

impl std::str::FromStr for Accept {
    type Err = String;
    fn from_str(s: &str) -> Result<Accept, String> {
        match s {
            "trusted" => Ok(Accept::Trusted),
            "any" => Ok(Accept::Any),
            _ => Err(format!(
                "'{s}' is not \"trusted\" (registrar, outbound proxy and allow list) or \"any\""
            )),
        }
    }
}

/// What kind of abuse a refused request was, for the ban table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AbuseKind {
    /// A request we could not parse (answered 400 when possible).
    MalformedRequest,
    /// An INVITE from a caller the policy does not admit.
    UnauthorisedInvite,
    /// A request for a user that is not ours.
    UnknownUser,
    /// A request method we do not serve outside a dialog (405/501: REGISTER,
    /// SUBSCRIBE, ... — what scanners probe with).
    MethodNotAllowed,
}

/// The decision on a new INVITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Let it ring; `vouched` when a configured server routed it (media
    /// may then latch to the first packet's source, `[media] latch`).
    Admit {
        /// Routed by the registrar / outbound proxy.
        vouched: bool,
    },
    /// Refuse it.
    Refuse(AbuseKind),
}

/// The answer policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnswerPolicy {
    /// `[call] accept`.
    pub accept: Accept,
    /// `[call] allow`: `user@host`, normalised by [`normalise_allow`].
    pub allow: Vec<String>,
    /// `[call] stealth`: refuse by silence rather than 403.
    pub stealth: bool,
}

/// An allow entry in canonical form (`user@host`, host lower case), from
/// `user@host` or a `sip:`/`sips:` URI; `None` when it is neither.
pub fn normalise_allow(entry: &str) -> Option<String> {
    let e = entry.trim();
    let lower = e.to_ascii_lowercase();
    let uri = if lower.starts_with("sip:") || lower.starts_with("sips:") {
        e.to_string()
    } else {
        format!("sip:{e}")
    };
    user_at_host(&uri)
}

impl AnswerPolicy {
    /// Decides on a new INVITE. `from_server`: its source is the registrar
    /// or outbound proxy; `our_user`: the user part of our address of record.
    pub fn decide(&self, req: &Message, from_server: bool, our_user: &str) -> Decision {
        if from_server {
            return Decision::Admit { vouched: true };
        }
        if req.ruri_user().is_some_and(|u| u != our_user) {
            return Decision::Refuse(AbuseKind::UnknownUser);
        }
        if self.accept == Accept::Any {
            return Decision::Admit { vouched: false };
        }
        let caller = req.header("from").and_then(user_at_host);
        if caller.is_some_and(|c| self.allow.contains(&c)) {
            return Decision::Admit { vouched: false };
        }
        Decision::Refuse(AbuseKind::UnauthorisedInvite)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(ruri: &str, from: &str) -> Message {
        Message::parse(
            format!(
                "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK1\r\nFrom: {from};tag=1\r\nTo: <sip:bridge@10.0.0.2>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn default_admits_only_the_server() {
        let p = AnswerPolicy::default();
        let r = invite("sip:bridge@10.0.0.2", "<sip:alice@10.0.0.9>");
        assert_eq!(
            p.decide(&r, true, "bridge"),
            Decision::Admit { vouched: true }
        );
        assert_eq!(
            p.decide(&r, false, "bridge"),
            Decision::Refuse(AbuseKind::UnauthorisedInvite)
        );
        // A server-routed call is not checked for the user (the proxy may rewrite).
        let other = invite("sip:12345@10.0.0.2", "<sip:alice@10.0.0.9>");
        assert_eq!(
            p.decide(&other, true, "bridge"),
            Decision::Admit { vouched: true }
        );
        assert_eq!(
            p.decide(&other, false, "bridge"),
            Decision::Refuse(AbuseKind::UnknownUser)
        );
    }

    #[test]
    fn allow_list_matches_user_at_host_exactly() {
        let p = AnswerPolicy {
            allow: vec![normalise_allow("sip:alice@Door.Example").unwrap()],
            ..AnswerPolicy::default()
        };
        assert_eq!(p.allow, vec!["alice@door.example"]);
        let admit = Decision::Admit { vouched: false };
        for from in [
            "<sip:alice@door.example>",
            "\"Alice\" <sip:alice@DOOR.example:5062;transport=udp>",
            "sip:alice@door.example",
        ] {
            assert_eq!(
                p.decide(&invite("sip:bridge@h", from), false, "bridge"),
                admit,
                "{from}"
            );
        }
        for from in [
            "<sip:Alice@door.example>",
            "<sip:alice@door.example.evil>",
            "<sip:malice@door.example>",
            "<sip:alice2@door.example>",
            "<sip:door.example>",
            "<sip:x@evil;alice@door.example>",
        ] {
            assert_eq!(
                p.decide(&invite("sip:bridge@h", from), false, "bridge"),
                Decision::Refuse(AbuseKind::UnauthorisedInvite),
                "{from}"
            );
        }
        // A Request-URI without a user is for us (direct IP dialling).
        assert_eq!(
            p.decide(
                &invite("sip:10.0.0.2", "<sip:alice@door.example>"),
                false,
                "bridge"
            ),
            admit
        );
    }

    #[test]
    fn any_admits_everyone_but_other_users() {
        let p = AnswerPolicy {
            accept: Accept::Any,
            ..AnswerPolicy::default()
        };
        assert_eq!(
            p.decide(&invite("sip:bridge@h", "<sip:x@y>"), false, "bridge"),
            Decision::Admit { vouched: false }
        );
        assert_eq!(
            p.decide(&invite("sip:root@h", "<sip:x@y>"), false, "bridge"),
            Decision::Refuse(AbuseKind::UnknownUser)
        );
        assert_eq!("any".parse::<Accept>(), Ok(Accept::Any));
        assert!("everyone".parse::<Accept>().is_err());
        assert_eq!(normalise_allow("alice"), None);
        assert_eq!(
            normalise_allow("bob@10.0.0.1").as_deref(),
            Some("bob@10.0.0.1")
        );
    }
}
