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
#[derive(Debug, Clone)]
pub struct StreamFramer {
    buf: Vec<u8>,
    limit: usize,
    failed: Option<FramingError>,
}

impl Default for StreamFramer {
    fn default() -> Self {
        StreamFramer::new(MAX_MESSAGE)
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
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
            limit,
            failed: None,
        }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes held that do not form a whole message yet (keep-alive CRLFs excluded).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next complete message, `None` when more bytes are needed, or the
    /// framing error (returned again on every later call: close the stream).
    pub fn next_message(&mut self) -> Option<Result<Vec<u8>, FramingError>> {
        if let Some(e) = &self.failed {
            return Some(Err(e.clone()));
        }
        let skip = self
            .buf
            .iter()
            .position(|b| *b != b'\r' && *b != b'\n')
            .unwrap_or(self.buf.len());
        self.buf.drain(..skip);
        let result = self.frame()?;
        if let Err(e) = &result {
            self.failed = Some(e.clone());
            self.buf = Vec::new();
        }
        Some(result)
    }

    fn frame(&mut self) -> Option<Result<Vec<u8>, FramingError>> {
        let Some(head_len) = find_head_end(&self.buf) else {
            if self.buf.len() > self.limit {
                return Some(Err(FramingError::TooLarge {
                    head: Vec::new(),
                    limit: self.limit,
                }));
            }
            return None;
        };
        let head = || self.buf[..head_len].to_vec();
        let body_len = match content_length(&self.buf[..head_len]) {
            Ok(Some(n)) => n,
            Ok(None) => return Some(Err(FramingError::MissingContentLength { head: head() })),
            Err(value) => {
                return Some(Err(FramingError::BadContentLength {
                    head: head(),
                    value,
                }))
            }
        };
        if head_len.saturating_add(body_len) > self.limit {
            return Some(Err(FramingError::TooLarge {
                head: head(),
                limit: self.limit,
            }));
        }
        let total = head_len + body_len;
        if self.buf.len() < total {
            return None;
        }
        let rest = self.buf.split_off(total);
        Some(Ok(std::mem::replace(&mut self.buf, rest)))
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
