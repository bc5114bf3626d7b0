//! Framing SIP messages on a byte stream (RFC 3261 section 18.3), sans-IO.
//!
//! On TCP a message ends where its Content-Length says: the header part runs
//! to the first empty line (CRLF CRLF), then exactly Content-Length bytes of
//! body follow. CRLFs between messages (RFC 5626 keep-alives) are skipped. A
//! message without Content-Length cannot be delimited on a stream, so it is a
//! framing error, as are a malformed Content-Length and a message larger than
//! the limit; after an error the stream is out of step and must be closed
//! (the I/O layer first sends [`error_response`] when there is one).

use super::message::{salvage_request, Builder, Message};
use thiserror::Error;

/// Largest message accepted on a stream (header part plus body).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Why a stream cannot be read further.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum FramingError {
    /// The header part has no Content-Length (mandatory on streams).
    #[error("no Content-Length on a stream transport")]
    MissingContentLength {
        /// The header part, for the 400 response.
        head: Vec<u8>,
    },
    /// Content-Length is not a decimal number (or given twice, differently).
    #[error("bad Content-Length '{value}'")]
    BadContentLength {
        /// The header part.
        head: Vec<u8>,
        /// The offending value.
        value: String,
    },
    /// The message (or its header part so far) exceeds the limit.
    #[error("message larger than {limit} bytes")]
    TooLarge {
        /// The header part when it was complete, else empty.
        head: Vec<u8>,
        /// The limit in force.
        limit: usize,
    },
}

/// Splits a byte stream into SIP messages; feed it with [`StreamFramer::push`]
/// and take messages with [`StreamFramer::next_message`].
///
/// Linear in the bytes received: consumed bytes are skipped by an offset
/// (the buffer is compacted only when the consumed part outweighs the rest),
/// the search for the end of a header part resumes where the previous one
/// stopped, and the Content-Length is read once per header part. A peer that
/// drips a message one byte at a time therefore costs O(1) per byte, not a
/// rescan of everything buffered.
///
/// Keep-alives (RFC 5626 4.4.1): every CRLF CRLF between messages is a ping
/// the I/O layer answers with a CRLF pong ([`StreamFramer::take_pings`]); any
/// CRLF between messages is seen as a pong by a client waiting for one
/// ([`StreamFramer::take_crlf_seen`]).
#[derive(Debug, Clone)]
pub struct StreamFramer {
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    start: usize,
    /// Where the search for CRLF CRLF resumes (absolute index in `buf`).
    scan: usize,
    /// The current message's header length and body length, once known.
    head: Option<(usize, usize)>,
    limit: usize,
    failed: Option<FramingError>,
    /// Keep-alive state between messages: 0 nothing, 1 CR, 2 CRLF, 3 CRLF CR.
    ka_state: u8,
    pings: usize,
    crlf_seen: bool,
    /// Bytes examined by the header search so far (for the linearity test).
    examined: u64,
}

impl Default for StreamFramer {
    fn default() -> Self {
        StreamFramer::new(MAX_MESSAGE)
    }
}

/// The end of the header part (index after CRLF CRLF) searching `buf` from `from`.
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| from + i + 4)
}
/// The Content-Length of a header part (long or compact form `l`), `Ok(None)` when absent.
fn content_length(head: &[u8]) -> Result<Option<usize>, String> {
    let text = String::from_utf8_lossy(head);
    let mut found: Option<usize> = None;
    // Header lines; folded continuation lines (leading SP/HT) cannot start a name.
    for line in text.split("\r\n").skip(1) {
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if !(name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l")) {
            continue;
        }
        let value = value.trim();
        let n = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
            value.parse::<usize>().map_err(|_| value.to_string())?
        } else {
            return Err(value.to_string());
        };
        if found.is_some_and(|f| f != n) {
            return Err(value.to_string());
        }
        found = Some(n);
    }
    Ok(found)
}

impl StreamFramer {
    /// A framer refusing messages longer than `limit` bytes.
    pub fn new(limit: usize) -> StreamFramer {
        StreamFramer {
            buf: Vec::new(),
            start: 0,
            scan: 0,
            head: None,
            limit,
            failed: None,
            ka_state: 0,
            pings: 0,
            crlf_seen: false,
            examined: 0,
        }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        // Compact when the consumed prefix is larger than what is left, so
        // each byte is moved at most a bounded number of times.
        if self.start > 0 && self.start >= self.buf.len() - self.start {
            self.buf.drain(..self.start);
            self.scan = self.scan.saturating_sub(self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes held that do not form a whole message yet (keep-alive CRLFs excluded).
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Bytes the header search has examined in all (at most about 4 per
    /// byte received: the framer is linear in its input).
    pub fn examined(&self) -> u64 {
        self.examined
    }

    /// Keep-alive pings (CRLF CRLF) received since the last call: answer
    /// each with one CRLF (RFC 5626 4.4.1).
    pub fn take_pings(&mut self) -> usize {
        std::mem::take(&mut self.pings)
    }

    /// Whether a CRLF arrived between messages since the last call (a pong,
    /// for a client that sent a ping).
    pub fn take_crlf_seen(&mut self) -> bool {
        std::mem::take(&mut self.crlf_seen)
    }

    /// Skips CR and LF bytes between messages, counting pings.
    fn skip_keepalives(&mut self) {
        while let Some(&b) = self.buf.get(self.start) {
            self.ka_state = match (self.ka_state, b) {
                (0 | 2, b'\r') => self.ka_state + 1,
                (1, b'\n') => {
                    self.crlf_seen = true;
                    2
                }
                (3, b'\n') => {
                    self.crlf_seen = true;
                    self.pings += 1;
                    0
                }
                (_, b'\r') => 1,
                (_, b'\n') => 0,
                _ => return,
            };
            self.start += 1;
        }
    }

    /// The next complete message, `None` when more bytes are needed, or the
    /// framing error (returned again on every later call: close the stream).
    pub fn next_message(&mut self) -> Option<Result<Vec<u8>, FramingError>> {
        if let Some(e) = &self.failed {
            return Some(Err(e.clone()));
        }
        if self.head.is_none() {
            self.skip_keepalives();
            self.scan = self.scan.max(self.start);
        }
        let result = self.frame()?;
        match &result {
            Err(e) => {
                self.failed = Some(e.clone());
                self.buf = Vec::new();
                self.start = 0;
                self.scan = 0;
            }
            Ok(_) => {
                self.head = None;
                self.ka_state = 0;
                self.scan = self.start;
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                    self.scan = 0;
                }
            }
        }
        Some(result)
    }

    fn frame(&mut self) -> Option<Result<Vec<u8>, FramingError>> {
        let (head_len, body_len) = match self.head {
            Some(h) => h,
            None => {
                let found = find_head_end(&self.buf, self.scan);
                let searched_to = found.unwrap_or(self.buf.len());
                self.examined += searched_to.saturating_sub(self.scan) as u64;
                let Some(end) = found else {
                    // Resume 3 bytes back: CRLF CRLF may straddle two reads.
                    self.scan = self.buf.len().saturating_sub(3).max(self.start);
                    if self.pending() > self.limit {
                        return Some(Err(FramingError::TooLarge {
                            head: Vec::new(),
                            limit: self.limit,
                        }));
                    }
                    return None;
                };
                let head = &self.buf[self.start..end];
                let head_len = head.len();
                let body_len = match content_length(head) {
                    Ok(Some(n)) => n,
                    Ok(None) => {
                        return Some(Err(FramingError::MissingContentLength {
                            head: head.to_vec(),
                        }))
                    }
                    Err(value) => {
                        return Some(Err(FramingError::BadContentLength {
                            head: head.to_vec(),
                            value,
                        }))
                    }
                };
                if head_len.saturating_add(body_len) > self.limit {
                    return Some(Err(FramingError::TooLarge {
                        head: head.to_vec(),
                        limit: self.limit,
                    }));
                }
                self.head = Some((head_len, body_len));
                (head_len, body_len)
            }
        };
        let total = head_len + body_len;
        if self.pending() < total {
            return None;
        }
        let msg = self.buf[self.start..self.start + total].to_vec();
        self.start += total;
        Some(Ok(msg))
    }
}

/// The response to send before closing a stream after `err`: 400 for a
/// missing or bad Content-Length, 513 for an oversize message, when the
/// header part was a request carrying Via, From, To, Call-ID and CSeq (not
/// ACK). `None` otherwise.
pub fn error_response(err: &FramingError) -> Option<Vec<u8>> {
    let (head, code, reason) = match err {
        FramingError::MissingContentLength { head }
        | FramingError::BadContentLength { head, .. } => (head, 400, "Bad Request"),
        FramingError::TooLarge { head, .. } => (head, 513, "Message Too Large"),
    };
    let req = salvage_request(head)?;
    if req.method.as_deref() == Some("ACK") {
        return None;
    }
    let text: String = err
        .to_string()
        .chars()
        .map(|c| if c == '"' || c.is_control() { ' ' } else { c })
        .take(120)
        .collect();
    let resp = Builder::response_to(&req, code, reason, None)
        .header("Warning", &format!("399 voipbridge \"{text}\""))
        .build();
    // Copied headers that are themselves malformed make a malformed answer: send none.
    Message::parse(&resp).is_ok().then_some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn msg(body: &str, cl: bool) -> Vec<u8> {
        let cl = if cl {
            format!("l: {}\r\n", body.len())
        } else {
            String::new()
        };
        format!(
            "OPTIONS sip:bridge@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5080;branch=z9hG4bK{}\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:bridge@127.0.0.1>\r\nCall-ID: c{}\r\nCSeq: 1 OPTIONS\r\n{cl}\r\n{body}",
            body.len(),
            body.len()
        )
        .into_bytes()
    }

    fn drain(f: &mut StreamFramer) -> Vec<Result<Vec<u8>, FramingError>> {
        let mut out = Vec::new();
        while let Some(r) = f.next_message() {
            let stop = r.is_err();
            out.push(r);
            if stop {
                break;
            }
        }
        out
    }

    #[test]
    fn splits_back_to_back_messages_and_skips_keepalives() {
        let (a, b) = (msg("", true), msg("hello", true));
        let mut stream = b"\r\n\r\n".to_vec();
        stream.extend(&a);
        stream.extend(b"\r\n");
        stream.extend(&b);
        let mut f = StreamFramer::default();
        f.push(&stream);
        let got = drain(&mut f);
        assert_eq!(got, vec![Ok(a.clone()), Ok(b.clone())]);
        assert_eq!(f.pending(), 0);
        assert!(Message::parse(&b).is_ok());
        // Half a message waits for the rest.
        f.push(&a[..a.len() - 3]);
        assert_eq!(f.next_message(), None);
        f.push(&a[a.len() - 3..]);
        assert_eq!(f.next_message(), Some(Ok(a)));
    }

    #[test]
    fn missing_content_length_is_a_400_and_stops_the_stream() {
        let mut f = StreamFramer::default();
        f.push(&msg("abc", false));
        f.push(&msg("", true));
        let e = f.next_message().unwrap().unwrap_err();
        assert!(matches!(e, FramingError::MissingContentLength { .. }));
        // Poisoned: the same error again, the following message is not delivered.
        assert_eq!(f.next_message(), Some(Err(e.clone())));
        let r = Message::parse(&error_response(&e).unwrap()).unwrap();
        assert_eq!(r.status, Some(400));
        assert_eq!(r.call_id(), "c3");
        assert!(r.header("warning").unwrap().contains("Content-Length"));
    }

    #[test]
    fn bad_and_conflicting_content_lengths_are_refused() {
        for bad in [
            "Content-Length: x1",
            "Content-Length: -1",
            "Content-Length: 99999999999999999999999",
            "Content-Length: 0\r\nl: 1",
        ] {
            let m = String::from_utf8(msg("", false))
                .unwrap()
                .replace("CSeq:", &format!("{bad}\r\nCSeq:"));
            let mut f = StreamFramer::default();
            f.push(m.as_bytes());
            let e = f.next_message().unwrap().unwrap_err();
            assert!(
                matches!(e, FramingError::BadContentLength { .. }),
                "{bad}: {e:?}"
            );
            assert_eq!(
                Message::parse(&error_response(&e).unwrap()).unwrap().status,
                Some(400)
            );
        }
    }

    #[test]
    fn oversize_messages_are_refused() {
        let mut f = StreamFramer::new(1024);
        f.push(&msg(&"x".repeat(2000), true));
        let e = f.next_message().unwrap().unwrap_err();
        assert!(matches!(e, FramingError::TooLarge { limit: 1024, .. }));
        assert_eq!(
            Message::parse(&error_response(&e).unwrap()).unwrap().status,
            Some(513)
        );
        // A header part that never ends is refused once past the limit, without a response.
        let mut f = StreamFramer::new(1024);
        f.push(b"OPTIONS sip:x SIP/2.0\r\n");
        assert_eq!(f.next_message(), None);
        f.push(&[b'a'; 1100]);
        let e = f.next_message().unwrap().unwrap_err();
        assert_eq!(
            e,
            FramingError::TooLarge {
                head: Vec::new(),
                limit: 1024
            }
        );
        assert_eq!(error_response(&e), None);
    }

    #[test]
    fn a_one_byte_drip_is_linear() {
        // A 60 KiB message dripped one byte per read: the header search
        // must not rescan the buffer on each read (it did: O(n^2)).
        let m = String::from_utf8(msg("", true))
            .unwrap()
            .replace("CSeq:", &format!("X-Pad: {}\r\nCSeq:", "p".repeat(60_000)));
        let m = m.into_bytes();
        let mut f = StreamFramer::default();
        let mut got = Vec::new();
        for b in &m {
            f.push(std::slice::from_ref(b));
            while let Some(r) = f.next_message() {
                got.push(r.unwrap());
            }
        }
        assert_eq!(got, vec![m.clone()]);
        assert!(
            f.examined() <= 4 * m.len() as u64,
            "examined {} bytes for {}",
            f.examined(),
            m.len()
        );
        // Many small messages in one read: each consumed by offset, not by
        // moving the rest of the buffer.
        let one = msg("", true);
        let many: Vec<u8> = one.iter().copied().cycle().take(one.len() * 200).collect();
        let mut f = StreamFramer::default();
        f.push(&many);
        let mut n = 0;
        while let Some(r) = f.next_message() {
            assert_eq!(r.unwrap(), one);
            n += 1;
        }
        assert_eq!(n, 200);
        assert_eq!(f.pending(), 0);
        assert!(f.examined() <= 2 * many.len() as u64);
    }

    #[test]
    fn keepalive_pings_and_pongs_are_counted() {
        let mut f = StreamFramer::default();
        // A ping cut across reads, then a lone CRLF (a pong), then a message.
        f.push(b"\r\n\r");
        assert_eq!(f.next_message(), None);
        assert!(f.take_crlf_seen());
        assert_eq!(f.take_pings(), 0);
        f.push(b"\n");
        assert_eq!(f.next_message(), None);
        assert_eq!(f.take_pings(), 1);
        assert!(f.take_crlf_seen());
        assert!(!f.take_crlf_seen());
        f.push(b"\r\n");
        assert_eq!(f.next_message(), None);
        assert!(f.take_crlf_seen());
        assert_eq!(f.take_pings(), 0);
        let m = msg("", true);
        f.push(&m);
        assert_eq!(f.next_message(), Some(Ok(m.clone())));
        // Two pings in one read; CRLFs inside a message are not pings.
        f.push(b"\r\n\r\n\r\n\r\n");
        f.push(&msg("a\r\n\r\nb", true));
        assert!(f.next_message().unwrap().is_ok());
        assert_eq!(f.take_pings(), 2);
        assert_eq!(f.pending(), 0);
    }

    proptest! {
        /// However the stream is cut into reads, the same messages come out.
        #[test]
        fn arbitrary_chunking_gives_the_same_messages(
            bodies in proptest::collection::vec("[a-z\r\n]{0,40}", 1..6),
            keepalive in proptest::collection::vec(0usize..3, 6),
            cuts in proptest::collection::vec(0usize..2000, 0..20),
        ) {
            let msgs: Vec<Vec<u8>> = bodies.iter().map(|b| msg(b, true)).collect();
            let mut stream = Vec::new();
            for (i, m) in msgs.iter().enumerate() {
                stream.extend(b"\r\n".repeat(keepalive[i]));
                stream.extend(m);
            }
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
            cuts.push(stream.len());
            cuts.sort_unstable();
            let mut f = StreamFramer::default();
            let (mut at, mut got) = (0, Vec::new());
            for c in cuts {
                f.push(&stream[at..c]);
                at = c;
                while let Some(r) = f.next_message() {
                    got.push(r.expect("valid stream"));
                }
            }
            prop_assert_eq!(got, msgs);
            prop_assert_eq!(f.pending(), 0);
        }

        /// Arbitrary bytes never panic and never yield more than was pushed.
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600), limit in 16usize..512) {
            let mut f = StreamFramer::new(limit);
            f.push(&data);
            let mut total = 0;
            while let Some(r) = f.next_message() {
                match r {
                    Ok(m) => { prop_assert!(m.len() <= limit); total += m.len(); }
                    Err(e) => { let _ = error_response(&e); break; }
                }
            }
            prop_assert!(total <= data.len());
        }
    }
}
