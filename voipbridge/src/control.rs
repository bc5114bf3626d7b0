//! The control socket: one JSON request per line from `voipbridge call`,
//! `status`, ... to the running agent, one JSON answer per line back.
//!
//! Who may use it: the socket is created under umask 0177, so it is mode
//! 0600 from the instant it exists (never world- or group-connectable, not
//! even between `bind` and a `chmod`); with `[control] group` it is then
//! given to that group and opened to 0660. Each client's credentials are
//! read from the kernel (SO_PEERCRED) and checked again: root, the daemon's
//! own user, or (with `group`) a member of that group; anyone else gets one
//! error line naming the rule and is disconnected. A request line is at
//! most [`MAX_LINE`] bytes, a client may stay [`CLIENT_TIMEOUT`] without
//! sending a line, and at most [`MAX_CLIENTS`] are served at once.

use crate::agent::AgentError;
use crate::media;
use serde::{Deserialize, Serialize};
use std::path::Path;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

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
    /// Ban a source (an IPv4 address, or the /64 of an IPv6 one).
    Ban {
        /// IP address.
        addr: String,
        /// Seconds (`[ban] ban_time_s` when absent).
        #[serde(default)]
        seconds: Option<u64>,
    },
    /// Lift a ban.
    Unban {
        /// IP address.
        addr: String,
    },
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
    /// The SIP transport: kind, listener, connections, counters, bans.
    pub transport: crate::transport::TransportStatus,
    /// `[media] srtp`.
    pub srtp: crate::srtp::sdes::SrtpMode,
    /// Whether SDES keys may be exchanged (TLS signalling, or `srtp_over_udp`).
    pub sdes_allowed: bool,
    /// SIP transaction table counters (held, evicted, stateless answers).
    pub transactions: crate::sip::transaction::TxStats,
}

/// Longest request line accepted, in bytes.
pub const MAX_LINE: usize = 4096;
/// Clients served at once.
pub const MAX_CLIENTS: usize = 16;
/// How long a client may stay without sending a whole line.
pub const CLIENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Who may use the control socket besides root and the daemon's user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Access {
    uid: u32,
    group: Option<(String, u32)>,
}

impl Access {
    /// Root, `uid` (the daemon's) and members of `group`.
    pub(crate) fn new(uid: u32, group: Option<(String, u32)>) -> Access {
        Access { uid, group }
    }

    /// Whether a peer with these credentials may send requests; `Err` says why not.
    pub(crate) fn check(&self, uid: u32, gid: u32) -> Result<(), String> {
        if uid == 0 || uid == self.uid {
            return Ok(());
        }
        if let Some((name, g)) = &self.group {
            if gid == *g || user_in_group(uid, *g) {
                return Ok(());
            }
            return Err(format!(
                "permission denied: uid {uid} is not root, the daemon's uid {} or in group {name}",
                self.uid
            ));
        }
        Err(format!(
            "permission denied: uid {uid} is not root or the daemon's uid {} (set [control] group to admit a group)",
            self.uid
        ))
    }
}

/// Whether the user `uid` has `gid` among its groups (primary or supplementary).
fn user_in_group(uid: u32, gid: u32) -> bool {
    use nix::unistd::{getgrouplist, Gid, Uid, User};
    let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else {
        return false;
    };
    let Ok(name) = std::ffi::CString::new(user.name.as_bytes()) else {
        return false;
    };
    getgrouplist(&name, user.gid)
        .map(|gs| gs.contains(&Gid::from_raw(gid)))
        .unwrap_or(false)
}

/// The gid of a group name (`[control] group`).
pub(crate) fn group_gid(name: &str) -> Result<u32, String> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(format!("no group named '{name}'")),
        Err(e) => Err(format!("looking up group '{name}': {e}")),
    }
}

/// Where the agent sends a request's answer.
pub(crate) type Reply = oneshot::Sender<serde_json::Value>;

/// Creates the control socket at `path`: mode 0600 from its first instant
/// (bound under umask 0177), then, with a group, group-owned and 0660.
pub(crate) fn bind_control(path: &Path, group: Option<u32>) -> Result<UnixListener, AgentError> {
    use nix::sys::stat::{umask, Mode};
    use std::os::unix::fs::PermissionsExt;
    let err = |e| AgentError::Control(path.to_path_buf(), e);
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "another voipbridge is running",
        )));
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if !std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) => {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "exists and is not a socket: not removing it",
            )));
        }
        Ok(_) => std::fs::remove_file(path).map_err(err)?,
        Err(_) => {}
    }
    // umask is per process: this runs at start, before any other thread
    // creates files (media threads start with the first call).
    let old = umask(Mode::from_bits_truncate(0o177));
    let bound = std::os::unix::net::UnixListener::bind(path);
    umask(old);
    let l = bound.map_err(err)?;
    if let Some(gid) = group {
        nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid)))
            .map_err(|e| err(std::io::Error::from(e)))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(err)?;
    }
    l.set_nonblocking(true).map_err(err)?;
    UnixListener::from_std(l).map_err(err)
}

fn error_line(msg: &str) -> Vec<u8> {
    let mut s = serde_json::json!({"ok": false, "error": msg}).to_string();
    s.push('\n');
    s.into_bytes()
}

/// Reads one line of at most [`MAX_LINE`] bytes; `Ok(None)` at the end.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    rd: &mut R,
    buf: &mut Vec<u8>,
) -> Result<Option<String>, String> {
    use tokio::io::AsyncReadExt;
    buf.clear();
    let n = (&mut *rd)
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', buf)
        .await
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        if buf.len() > MAX_LINE {
            return Err(format!("request longer than {MAX_LINE} bytes"));
        }
        // The last line without its newline.
    } else {
        buf.pop();
    }
    String::from_utf8(std::mem::take(buf))
        .map(Some)
        .map_err(|_| "request is not UTF-8".to_string())
}

/// Sends `why` as one error line and closes, in a task of its own (at most
/// [`MAX_CLIENTS`] at once; beyond, the connection is just closed): the
/// client's request is read and discarded first, so closing does not reset
/// the connection before the client reads the error.
fn refuse(
    stream: UnixStream,
    why: String,
    refusing: &std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::Ordering;
    if refusing.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
        refusing.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    let refusing = refusing.clone();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let (mut rd, mut wr) = stream.into_split();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
            let _ = wr.write_all(&error_line(&why)).await;
            let _ = wr.shutdown().await;
            let mut sink = [0u8; 4096];
            while let Ok(n) = rd.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        refusing.fetch_sub(1, Ordering::SeqCst);
    });
}

pub(crate) async fn control_server(
    listener: UnixListener,
    access: Access,
    tx: mpsc::Sender<(Request, Reply)>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let clients = Arc::new(AtomicUsize::new(0));
    let refusing = Arc::new(AtomicUsize::new(0));
    let mut last_refusal_log: Option<std::time::Instant> = None;
    let mut refused = 0u64;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let cred = stream.peer_cred();
        let verdict = match &cred {
            Ok(c) => access.check(c.uid(), c.gid()),
            Err(e) => Err(format!("cannot read the client's credentials: {e}")),
        };
        if let Err(why) = verdict {
            refused += 1;
            if last_refusal_log.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(10)) {
                let pid = cred.as_ref().ok().and_then(|c| c.pid());
                tracing::warn!(?pid, refused, "control client refused: {why}");
                last_refusal_log = Some(std::time::Instant::now());
            }
            refuse(stream, why, &refusing);
            continue;
        }
        if clients.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
            clients.fetch_sub(1, Ordering::SeqCst);
            refuse(
                stream,
                format!("busy: {MAX_CLIENTS} control clients already connected"),
                &refusing,
            );
            continue;
        }
        let tx = tx.clone();
        let clients = clients.clone();
        tokio::spawn(async move {
            let (rd, mut wr) = stream.into_split();
            let mut rd = BufReader::new(rd);
            let mut buf = Vec::new();
            loop {
                let line = match tokio::time::timeout(CLIENT_TIMEOUT, read_line(&mut rd, &mut buf))
                    .await
                {
                    Ok(Ok(Some(l))) => l,
                    Ok(Ok(None)) | Err(_) => break,
                    Ok(Err(why)) => {
                        let _ = wr.write_all(&error_line(&why)).await;
                        let _ = wr.shutdown().await;
                        // Read what the client still sends, so closing does
                        // not reset the connection before it reads the error.
                        let mut sink = [0u8; 4096];
                        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
                            use tokio::io::AsyncReadExt;
                            while let Ok(n) = rd.read(&mut sink).await {
                                if n == 0 {
                                    break;
                                }
                            }
                        })
                        .await;
                        break;
                    }
                };
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
            clients.fetch_sub(1, Ordering::SeqCst);
        });
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
