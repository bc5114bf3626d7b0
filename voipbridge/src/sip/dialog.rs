//! Dialogs (RFC 3261 12, 14): identity (Call-ID and both tags), the local
//! and remote CSeq rules, the route set, the remote target and its
//! refresh, and the 14.1 retry window after a 491 (glare).
//!
//! A dialog is data plus the rules RFC 3261 puts on it; the session layer
//! decides what to send and the transaction layer carries it.

use super::message::{addr_uri, param, Builder, Message};
use super::uri::{is_dialable, is_loose_router, is_route, uri_addr};
use rand::Rng;
use std::net::SocketAddr;
use std::time::Duration;

/// Why an in-dialog request is refused by the dialog layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    /// Its CSeq is lower than the last one seen (12.2.2): 500.
    #[error("CSeq out of order")]
    OutOfOrder,
    /// The Contact of a dialog-creating request is no SIP URI we can reach: 400.
    #[error("bad Contact URI")]
    BadContact,
    /// A Record-Route value is no name-addr we can route through: 400
    /// for a dialog-creating request; a 2xx's ends the call.
    #[error("bad Record-Route")]
    BadRoute,
}

/// A message's Record-Route values in order (12.1.1, 12.1.2), each one
/// checked by [`is_route`]: they become Route headers and, behind a strict
/// router, the Request-URI of every in-dialog request.
fn route_set(msg: &Message) -> Result<Vec<String>, DialogError> {
    let rr = msg.header_values("record-route");
    if rr.iter().all(|v| is_route(v)) {
        Ok(rr)
    } else {
        Err(DialogError::BadRoute)
    }
}

/// Dialog identity (12): Call-ID, local tag and remote tag.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DialogId {
    /// Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag (empty for an RFC 2543 peer without one).
    pub remote_tag: String,
}

/// One dialog's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    /// Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag; `None` before the UAC hears a tagged response.
    pub remote_tag: Option<String>,
    /// Our From (UAC) or To (UAS) header value, our tag included.
    pub local_hdr: String,
    /// The peer's header value for the To of our requests (its tag included once known).
    pub remote_hdr: String,
    /// Last CSeq number we used.
    pub local_seq: u32,
    /// Last CSeq number the peer used (none before its first request).
    pub remote_seq: Option<u32>,
    /// Where our in-dialog requests go (the peer's Contact).
    pub remote_target: String,
    /// Route header values for in-dialog requests, first hop first.
    pub route_set: Vec<String>,
    /// Confirmed (a 2xx) rather than early.
    pub confirmed: bool,
    /// We sent the dialog-creating INVITE, so we own the Call-ID (14.1).
    pub caller: bool,
    /// Where requests go when the next hop's URI is a host name (the peer's address).
    pub fallback: SocketAddr,
}

impl Dialog {
    /// The dialog a UAC starts with its INVITE (early, no remote tag yet).
    pub fn uac(
        call_id: &str,
        local_tag: &str,
        local_hdr: String,
        remote_hdr: String,
        target: &str,
        cseq: u32,
        fallback: SocketAddr,
    ) -> Dialog {
        Dialog {
            call_id: call_id.to_string(),
            local_tag: local_tag.to_string(),
            remote_tag: None,
            local_hdr,
            remote_hdr,
            local_seq: cseq,
            remote_seq: None,
            remote_target: target.to_string(),
            route_set: Vec::new(),
            confirmed: false,
            caller: true,
            fallback,
        }
    }

    /// The dialog a UAS creates from an INVITE (12.1.1): the route set is
    /// the Record-Route in order, the remote target the Contact.
    pub fn uas(
        req: &Message,
        local_tag: &str,
        fallback: SocketAddr,
    ) -> Result<Dialog, DialogError> {
        let target = req
            .header_uri("contact")
            .filter(|t| is_dialable(t))
            .ok_or(DialogError::BadContact)?;
        let route_set = route_set(req)?;
        Ok(Dialog {
            call_id: req.call_id().to_string(),
            local_tag: local_tag.to_string(),
            remote_tag: req.from_tag(),
            local_hdr: format!("{};tag={local_tag}", req.header("to").unwrap_or("")),
            remote_hdr: req.header("from").unwrap_or("").to_string(),
            local_seq: 0,
            remote_seq: req.cseq().map(|c| c.0),
            remote_target: target,
            route_set,
            confirmed: false,
            caller: false,
            fallback,
        })
    }

    /// The identity.
    pub fn id(&self) -> DialogId {
        DialogId {
            call_id: self.call_id.clone(),
            local_tag: self.local_tag.clone(),
            remote_tag: self.remote_tag.clone().unwrap_or_default(),
        }
    }

    /// Whether an in-dialog request (To tag set) belongs to this dialog:
    /// Call-ID, its To tag is ours, its From tag the peer's (12.2.2).
    pub fn matches_request(&self, req: &Message) -> bool {
        req.call_id() == self.call_id
            && req.to_tag().as_deref() == Some(self.local_tag.as_str())
            && req.from_tag() == self.remote_tag
    }

    /// Whether a response to our request belongs to this dialog (its To tag
    /// is the peer's, or the dialog is still without one).
    pub fn matches_response(&self, resp: &Message) -> bool {
        resp.call_id() == self.call_id
            && resp.from_tag().as_deref() == Some(self.local_tag.as_str())
            && (self.remote_tag.is_none() || resp.to_tag() == self.remote_tag)
    }

    /// A UAC learns the dialog from a tagged response (12.1.2): remote
    /// tag, route set (the Record-Route reversed), remote target (Contact).
    /// A 2xx confirms it and recomputes both; an early dialog's are
    /// replaced by the 2xx's (13.2.2.4). A Record-Route we cannot route
    /// through leaves the route set empty (requests go to the remote
    /// target) and is reported: the caller ends a confirmed dialog.
    pub fn uac_update(&mut self, resp: &Message) -> Result<(), DialogError> {
        let code = resp.status.unwrap_or(0);
        if self.confirmed || resp.to_tag().is_none() || code <= 100 {
            return Ok(());
        }
        self.remote_tag = resp.to_tag();
        if let Some(to) = resp.header("to") {
            self.remote_hdr = to.to_string();
        }
        if let Some(t) = resp.header_uri("contact").filter(|t| is_dialable(t)) {
            self.remote_target = t;
        }
        self.confirmed = (200..300).contains(&code);
        match route_set(resp) {
            Ok(mut rr) => {
                rr.reverse();
                self.route_set = rr;
                Ok(())
            }
            Err(e) => {
                self.route_set.clear();
                Err(e)
            }
        }
    }

    /// The remote CSeq rule for a new in-dialog request (12.2.2): lower
    /// than the last one is out of order; otherwise it becomes the last.
    /// ACK and CANCEL carry their INVITE's number and are not checked.
    pub fn check_remote_cseq(&mut self, req: &Message) -> Result<(), DialogError> {
        if matches!(req.method(), "ACK" | "CANCEL") {
            return Ok(());
        }
        let Some((n, _)) = req.cseq() else {
            return Err(DialogError::OutOfOrder);
        };
        if self.remote_seq.is_some_and(|last| n < last) {
            return Err(DialogError::OutOfOrder);
        }
        self.remote_seq = Some(n);
        Ok(())
    }

    /// A target refresh (12.2: re-INVITE or its 2xx): the Contact becomes
    /// the remote target when it is a SIP URI we can send to.
    pub fn refresh_target(&mut self, msg: &Message) {
        if let Some(t) = msg.header_uri("contact").filter(|t| is_dialable(t)) {
            self.remote_target = t;
        }
    }

    /// The next local CSeq number (12.2.1.1: one more for every new request).
    pub fn next_cseq(&mut self) -> u32 {
        self.local_seq = self.local_seq.wrapping_add(1).max(1);
        self.local_seq
    }

    /// The next hop of in-dialog requests ([`Dialog::route`]'s address,
    /// without building the Request-URI and Route values).
    pub fn next_hop(&self) -> SocketAddr {
        match self.route_set.first() {
            None => uri_addr(&self.remote_target).unwrap_or(self.fallback),
            Some(first) => uri_addr(&addr_uri(first)).unwrap_or(self.fallback),
        }
    }

    /// Request-URI, Route values and next hop of an in-dialog request
    /// (12.2.1.1): with a loose router first the remote target is the
    /// Request-URI; with a strict router its URI is, and the remote target
    /// goes last in the Route.
    pub fn route(&self) -> (String, Vec<String>, SocketAddr) {
        let Some(first) = self.route_set.first() else {
            let dest = uri_addr(&self.remote_target).unwrap_or(self.fallback);
            return (self.remote_target.clone(), Vec::new(), dest);
        };
        let first_uri = addr_uri(first);
        let dest = uri_addr(&first_uri).unwrap_or(self.fallback);
        if is_loose_router(&first_uri) {
            (self.remote_target.clone(), self.route_set.clone(), dest)
        } else {
            let mut routes: Vec<String> = self.route_set.iter().skip(1).cloned().collect();
            routes.push(format!("<{}>", self.remote_target));
            (first_uri, routes, dest)
        }
    }

    /// The To header value of our requests: the peer's, with its tag.
    pub fn to_header(&self) -> String {
        match &self.remote_tag {
            Some(t) if param(&self.remote_hdr, "tag").is_none() => {
                format!("{};tag={t}", self.remote_hdr)
            }
            _ => self.remote_hdr.clone(),
        }
    }

    /// A new in-dialog request: Request-URI and Route from the route set,
    /// From/To/Call-ID, `CSeq: cseq method`, the given Via. Returns the
    /// builder (the caller adds the rest) and the next hop.
    pub fn request(&self, method: &str, cseq: u32, via: &str) -> (Builder, SocketAddr) {
        let (ruri, routes, dest) = self.route();
        let mut b = Builder::request(method, &ruri)
            .header("Via", via)
            .header("Max-Forwards", "70");
        for r in &routes {
            b = b.header("Route", r);
        }
        let b = b
            .header("From", &self.local_hdr)
            .header("To", &self.to_header())
            .header("Call-ID", &self.call_id)
            .header("CSeq", &format!("{cseq} {method}"));
        (b, dest)
    }

    /// How long to wait before retrying a re-INVITE refused with 491
    /// (14.1): the owner of the Call-ID 2.1 to 4 s, the other side 0 to 2 s,
    /// in units of 10 ms.
    pub fn glare_retry_delay(&self, rng: &mut impl Rng) -> Duration {
        let units = if self.caller {
            rng.gen_range(210..=400)
        } else {
            rng.gen_range(0..=200)
        };
        Duration::from_millis(units * 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn invite(extra: &str) -> Message {
        Message::parse(
            format!(
                "INVITE sip:bob@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK1\r\n{extra}From: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 10 INVITE\r\nContact: <sip:alice@127.0.0.1:5080>\r\nContent-Length: 0\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap()
    }

    fn fallback() -> SocketAddr {
        "127.0.0.9:5060".parse().unwrap()
    }

    /// Our INVITE's early dialog: Call-ID c1, our tag "us", to alice.
    fn uac() -> Dialog {
        Dialog::uac(
            "c1",
            "us",
            "<sip:bob@127.0.0.1>;tag=us".into(),
            "<sip:alice@127.0.0.1>".into(),
            "sip:alice@127.0.0.1",
            1,
            fallback(),
        )
    }

    fn in_dialog(method: &str, cseq: u32, from_tag: &str, to_tag: &str) -> Message {
        Message::parse(
            format!(
                "{method} sip:bob@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK{cseq}\r\nFrom: <sip:alice@127.0.0.1>;tag={from_tag}\r\nTo: <sip:bob@127.0.0.1>;tag={to_tag}\r\nCall-ID: c1\r\nCSeq: {cseq} {method}\r\nContact: <sip:alice@127.0.0.2:5090>\r\nContent-Length: 0\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn uas_dialog_matches_by_both_tags_and_orders_cseq() {
        let mut d = Dialog::uas(
            &invite("Record-Route: <sip:p1;lr>, <sip:p2;lr>\r\n"),
            "b1",
            fallback(),
        )
        .unwrap();
        assert_eq!(d.remote_seq, Some(10));
        assert_eq!(d.route_set, vec!["<sip:p1;lr>", "<sip:p2;lr>"]);
        assert!(d.matches_request(&in_dialog("BYE", 11, "a1", "b1")));
        assert!(!d.matches_request(&in_dialog("BYE", 11, "a2", "b1")));
        assert!(!d.matches_request(&in_dialog("BYE", 11, "a1", "zz")));
        assert_eq!(
            d.check_remote_cseq(&in_dialog("INFO", 12, "a1", "b1")),
            Ok(())
        );
        assert_eq!(
            d.check_remote_cseq(&in_dialog("INFO", 11, "a1", "b1")),
            Err(DialogError::OutOfOrder)
        );
        assert_eq!(d.remote_seq, Some(12));
        // ACK is not checked.
        assert_eq!(
            d.check_remote_cseq(&in_dialog("ACK", 1, "a1", "b1")),
            Ok(())
        );
        // Our first request: CSeq 1, our tag in From, theirs in To.
        assert_eq!(d.next_cseq(), 1);
        let (b, dest) = d.request("BYE", 1, "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx");
        let m = Message::parse(&b.build()).unwrap();
        assert_eq!(m.from_tag().as_deref(), Some("b1"));
        assert_eq!(m.to_tag().as_deref(), Some("a1"));
        assert_eq!(m.uri, "sip:alice@127.0.0.1:5080");
        assert_eq!(m.header_values("route"), vec!["<sip:p1;lr>", "<sip:p2;lr>"]);
        assert_eq!(dest, fallback(), "p1 is a host name");
        // Target refresh.
        d.refresh_target(&in_dialog("INVITE", 13, "a1", "b1"));
        assert_eq!(d.remote_target, "sip:alice@127.0.0.2:5090");
    }

    #[test]
    fn bad_contact_refuses_the_dialog() {
        let no_contact = Message::parse(
            b"INVITE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:b@c>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContact: <http://example.com>\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            Dialog::uas(&no_contact, "t", fallback()),
            Err(DialogError::BadContact)
        );
    }

    #[test]
    fn an_unroutable_record_route_refuses_the_dialog() {
        // The first is a strict router whose URI would become the
        // Request-URI: `<sip:85ag=2` (found by the fuzzer: a BYE we could
        // not parse back). Then values that are not name-addrs.
        for rr in [
            "<<sip:85ag=2>, <sip:127.0.0.1;lr>",
            "sip:127.0.0.1;lr",
            "<sip:127.0.0.1;lr>, <http://example.com>",
            "<sip:127.0.0.1:99999;lr>",
        ] {
            assert_eq!(
                Dialog::uas(&invite(&format!("Record-Route: {rr}\r\n")), "t", fallback()),
                Err(DialogError::BadRoute),
                "{rr}"
            );
        }
        let d = Dialog::uas(
            &invite("Record-Route: \"p\" <sip:p1;lr>;x=1\r\n"),
            "t",
            fallback(),
        )
        .unwrap();
        assert_eq!(d.route_set, vec!["\"p\" <sip:p1;lr>;x=1"]);
        // A UAC keeps no route set from such a response and says so.
        let mut d = uac();
        let ok = Message::parse(
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\nRecord-Route: <sip:127.0.0.2;lr>, <<sip:x>\r\nFrom: <sip:bob@127.0.0.1>;tag=us\r\nTo: <sip:alice@127.0.0.1>;tag=them\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:5090>\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(d.uac_update(&ok), Err(DialogError::BadRoute));
        assert!(d.confirmed && d.route_set.is_empty());
        assert_eq!(d.route().0, "sip:alice@127.0.0.1:5090");
    }

    #[test]
    fn uac_dialog_reverses_record_route_and_strict_routers_swap_the_uri() {
        let mut d = uac();
        let ok = Message::parse(
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\nRecord-Route: <sip:127.0.0.3:5063>, <sip:127.0.0.2:5062;lr>\r\nFrom: <sip:bob@127.0.0.1>;tag=us\r\nTo: <sip:alice@127.0.0.1>;tag=them\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:5090>\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        assert!(d.matches_response(&ok));
        assert_eq!(d.uac_update(&ok), Ok(()));
        assert!(d.confirmed);
        assert_eq!(d.remote_tag.as_deref(), Some("them"));
        let (ruri, routes, dest) = d.route();
        assert_eq!(ruri, "sip:alice@127.0.0.1:5090");
        assert_eq!(routes.len(), 2);
        assert_eq!(dest, "127.0.0.2:5062".parse().unwrap());
        // Strict router first.
        d.route_set = vec!["<sip:127.0.0.3:5063>".into()];
        let (ruri, routes, dest) = d.route();
        assert_eq!(ruri, "sip:127.0.0.3:5063");
        assert_eq!(routes, vec!["<sip:alice@127.0.0.1:5090>"]);
        assert_eq!(dest, "127.0.0.3:5063".parse().unwrap());
        // A later 2xx from another fork does not rewrite a confirmed dialog.
        let other = Message::parse(
            String::from_utf8_lossy(
                b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:bob@127.0.0.1>;tag=us\r\nTo: <sip:alice@127.0.0.1>;tag=fork2\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.7>\r\nContent-Length: 0\r\n\r\n",
            )
            .as_bytes(),
        )
        .unwrap();
        assert!(!d.matches_response(&other));
        assert_eq!(d.uac_update(&other), Ok(()));
        assert_eq!(d.remote_tag.as_deref(), Some("them"));
    }

    #[test]
    fn glare_windows_follow_14_1() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut d = Dialog::uac(
            "c",
            "t",
            "f".into(),
            "t".into(),
            "sip:x@127.0.0.1",
            1,
            fallback(),
        );
        for _ in 0..500 {
            let w = d.glare_retry_delay(&mut rng);
            assert!(
                w >= Duration::from_millis(2100) && w <= Duration::from_secs(4),
                "{w:?}"
            );
            assert_eq!(w.as_millis() % 10, 0);
        }
        d.caller = false;
        let ws: Vec<Duration> = (0..500).map(|_| d.glare_retry_delay(&mut rng)).collect();
        assert!(ws.iter().all(|w| *w <= Duration::from_secs(2)));
        assert!(ws.iter().any(|w| *w < Duration::from_millis(200)));
        assert!(ws.iter().any(|w| *w > Duration::from_millis(1800)));
    }
}
