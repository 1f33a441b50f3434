//! Who asked for what: one record per change through the socket.

use crate::api::Reply;
use std::os::unix::net::UnixStream;

/// Who is at the other end of a connection (`SO_PEERCRED`), for the audit log.
#[derive(Debug, Clone, Copy)]
pub(super) struct Peer {
    uid: Option<u32>,
    pid: Option<i32>,
}

impl Peer {
    pub(super) fn of(stream: &UnixStream) -> Peer {
        match rustix::net::sockopt::socket_peercred(stream) {
            Ok(c) => Peer {
                uid: Some(c.uid.as_raw()),
                pid: Some(c.pid.as_raw_nonzero().get()),
            },
            Err(_) => Peer {
                uid: None,
                pid: None,
            },
        }
    }
}

/// Longest request text kept in an audit record.
const AUDIT_REQUEST_BYTES: usize = 4096;

/// One audit record per change asked through the socket, applied or refused:
/// who (uid, pid), what (the request as sent), and the outcome (the version in
/// force after it, or the error code).
pub(super) fn audit(peer: &Peer, line: &[u8], reply: &Reply) {
    let end = line.len().min(AUDIT_REQUEST_BYTES);
    let request = String::from_utf8_lossy(&line[..end]);
    let error = reply.error.as_ref().map(|e| e.code.to_string());
    tracing::info!(
        target: "audit",
        uid = peer.uid,
        pid = peer.pid,
        ok = reply.ok,
        version = reply.version,
        error = error.as_deref(),
        request = %request,
        "control change"
    );
}
