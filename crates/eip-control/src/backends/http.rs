//! One HTTP check as a TCP exchange: a sans-IO state machine with no clock,
//! no sockets and no allocation. The checker hands it the backend's segments
//! (already parsed out of their VXLAN, see `codec`) and sends the one segment
//! it asks for, if any; the timeout is the checker's (`PathHealth`).
//!
//! ```text
//!   POP (probe source)                                  backend
//!   SYN             seq=isn                       ->
//!                                                 <-    SYN-ACK  ack=isn+1
//!   ACK+PSH "GET <path> HTTP/1.1 ..." seq=isn+1   ->
//!                                                 <-    "HTTP/1.1 503 ..." (status line read)
//!   RST             seq=isn+1+len(request)        ->
//! ```
//!
//! Verdicts: a status line ([`Verdict::Status`], judged by the caller against
//! `expect`), a RST before or after the connection ([`Verdict::Refused`],
//! [`Verdict::Reset`]), the backend closing before a status line
//! ([`Verdict::Closed`]), or something that is no HTTP/1 status line
//! ([`Verdict::Garbled`]). The status line may come in the first data segment
//! (usual: nginx sends headers and a short body at once) or over several; a
//! partial one is acknowledged so the backend sends the rest. Out-of-order
//! data is not kept: it gets a duplicate ACK, and the backend retransmits.

use crate::backends::codec::{ACK, FIN, PSH, RST, SYN};

/// Bytes of the status line kept: `HTTP/1.1 200 ` is 13.
const LINE: usize = 16;

/// A segment from the backend, outer and IP headers gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentIn<'a> {
    pub seq: u32,
    /// Meaningful only with the ACK flag.
    pub ack: u32,
    pub flags: u8,
    pub payload: &'a [u8],
}

/// A segment to send to the backend; `with_request` says whether it carries
/// the request bytes (the caller owns them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentOut {
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub with_request: bool,
}

/// How an exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The status of the answer's status line.
    Status(u16),
    /// RST to the SYN: nothing listens.
    Refused,
    /// RST once connected.
    Reset,
    /// FIN before a whole status line.
    Closed,
    /// The answer does not start with an HTTP/1 status line.
    Garbled,
}

/// What one segment from the backend led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Step {
    pub send: Option<SegmentOut>,
    pub verdict: Option<Verdict>,
}

/// A segment that belongs to no state of this exchange (a wrong ACK number,
/// a SYN-ACK to another SYN): ignored, and counted by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stray;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    SynSent,
    /// Connected, request sent: reading the status line.
    Requested,
    /// Verdict given: later segments are absorbed.
    Done,
}

/// One HTTP check's TCP exchange.
#[derive(Debug, Clone)]
pub struct Exchange {
    isn: u32,
    request_len: u32,
    state: State,
    /// Next sequence number expected from the backend.
    rcv_nxt: u32,
    line: [u8; LINE],
    line_len: usize,
}

impl Exchange {
    /// An exchange whose SYN has sequence number `isn` and whose request is
    /// `request_len` bytes long.
    pub fn new(isn: u32, request_len: usize) -> Exchange {
        Exchange {
            isn,
            request_len: request_len as u32,
            state: State::SynSent,
            rcv_nxt: 0,
            line: [0; LINE],
            line_len: 0,
        }
    }

    /// The SYN that opens the exchange.
    pub fn syn(&self) -> SegmentOut {
        SegmentOut {
            seq: self.isn,
            ack: 0,
            flags: SYN,
            with_request: false,
        }
    }

    /// True once a verdict was given.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The RST that abandons a connected exchange without a verdict (its
    /// timeout passed), so the backend does not keep it open; none before the
    /// connection or after a verdict (that one sent its own).
    pub fn abandon(&mut self) -> Option<SegmentOut> {
        let connected = self.state == State::Requested;
        self.state = State::Done;
        connected.then(|| self.rst())
    }

    /// Our sequence number after the request.
    fn snd_nxt(&self) -> u32 {
        self.isn.wrapping_add(1).wrapping_add(self.request_len)
    }

    fn rst(&self) -> SegmentOut {
        SegmentOut {
            seq: self.snd_nxt(),
            ack: self.rcv_nxt,
            flags: RST | ACK,
            with_request: false,
        }
    }

    fn ack(&self) -> SegmentOut {
        SegmentOut {
            seq: self.snd_nxt(),
            ack: self.rcv_nxt,
            flags: ACK,
            with_request: false,
        }
    }

    fn request(&self) -> SegmentOut {
        SegmentOut {
            seq: self.isn.wrapping_add(1),
            ack: self.rcv_nxt,
            flags: ACK | PSH,
            with_request: true,
        }
    }

    fn finish(&mut self, verdict: Verdict, send: Option<SegmentOut>) -> Step {
        self.state = State::Done;
        Step {
            send,
            verdict: Some(verdict),
        }
    }

    /// Takes one segment from the backend.
    ///
    /// # Errors
    /// [`Stray`] for a segment that does not belong to this exchange's state.
    pub fn on_segment(&mut self, seg: &SegmentIn<'_>) -> Result<Step, Stray> {
        let has = |flag: u8| seg.flags & flag != 0;
        match self.state {
            State::Done => Ok(Step::default()),
            State::SynSent => {
                if !has(ACK) || seg.ack != self.isn.wrapping_add(1) {
                    return Err(Stray);
                }
                if has(RST) {
                    return Ok(self.finish(Verdict::Refused, None));
                }
                if !has(SYN) {
                    return Err(Stray);
                }
                self.rcv_nxt = seg.seq.wrapping_add(1);
                self.state = State::Requested;
                Ok(Step {
                    send: Some(self.request()),
                    verdict: None,
                })
            }
            State::Requested => {
                // A RST is taken when it is exactly where the backend's data
                // stands (RFC 5961) or acknowledges what we sent.
                let acks =
                    has(ACK) && seg.ack.wrapping_sub(self.isn.wrapping_add(1)) <= self.request_len;
                if has(RST) {
                    if seg.seq == self.rcv_nxt || acks {
                        return Ok(self.finish(Verdict::Reset, None));
                    }
                    return Err(Stray);
                }
                if !acks {
                    return Err(Stray);
                }
                if has(SYN) {
                    // The SYN-ACK again: our request (or its ACK) was lost.
                    if seg.seq.wrapping_add(1) != self.rcv_nxt {
                        return Err(Stray);
                    }
                    return Ok(Step {
                        send: Some(self.request()),
                        verdict: None,
                    });
                }
                if seg.seq != self.rcv_nxt {
                    // Out of order or a retransmission: say where we stand.
                    let send = (!seg.payload.is_empty() || has(FIN)).then(|| self.ack());
                    return Ok(Step {
                        send,
                        verdict: None,
                    });
                }
                let take = seg.payload.len().min(LINE - self.line_len);
                self.line[self.line_len..self.line_len + take]
                    .copy_from_slice(&seg.payload[..take]);
                self.line_len += take;
                self.rcv_nxt = self.rcv_nxt.wrapping_add(seg.payload.len() as u32);
                if has(FIN) {
                    self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
                }
                match status_line(&self.line[..self.line_len], has(FIN)) {
                    Some(Ok(status)) => Ok(self.finish(Verdict::Status(status), Some(self.rst()))),
                    Some(Err(())) => Ok(self.finish(Verdict::Garbled, Some(self.rst()))),
                    None if has(FIN) => Ok(self.finish(Verdict::Closed, Some(self.rst()))),
                    None if seg.payload.is_empty() => Ok(Step::default()),
                    None => Ok(Step {
                        send: Some(self.ack()),
                        verdict: None,
                    }),
                }
            }
        }
    }
}

/// The status of `HTTP/1.x SSS` at the start of `line`: `None` while more
/// bytes could still make it one (the answer was cut short if it is
/// `complete`), `Err` when they cannot.
fn status_line(line: &[u8], complete: bool) -> Option<Result<u16, ()>> {
    const PREFIX: &[u8] = b"HTTP/";
    let n = line.len().min(PREFIX.len());
    if line[..n] != PREFIX[..n] {
        return Some(Err(()));
    }
    // `HTTP/` then a version without spaces, one space, three digits, then a
    // space or the end of the line.
    let Some(space) = line.iter().position(|&b| b == b' ') else {
        let too_long = line.len() >= LINE || line.contains(&b'\n');
        return too_long.then_some(Err(()));
    };
    let version = &line[PREFIX.len().min(space)..space];
    if space < PREFIX.len() || version.is_empty() || !version.starts_with(b"1.") {
        return Some(Err(()));
    }
    let digits = &line[space + 1..];
    if digits.len() < 4 {
        if digits.iter().any(|b| !b.is_ascii_digit()) {
            return Some(Err(()));
        }
        // `HTTP/1.1 200` then the end of the answer: a status line without
        // a reason phrase or line end, taken as it is.
        if complete && digits.len() == 3 {
            return Some(Ok(status(digits)));
        }
        return None;
    }
    if !digits[..3].iter().all(u8::is_ascii_digit) || !matches!(digits[3], b' ' | b'\r' | b'\n') {
        return Some(Err(()));
    }
    Some(Ok(status(&digits[..3])))
}

fn status(digits: &[u8]) -> u16 {
    digits.iter().fold(0, |n, d| n * 10 + u16::from(d - b'0'))
}

/// The request of a check: `GET <path> HTTP/1.1`, `Host`, `Connection: close`.
pub fn request(path: &str, host: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: eipd-check\r\n\r\n")
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISN: u32 = 0xffff_fff0; // wraps during the exchange
    const THEIRS: u32 = 7_000;
    const REQ: usize = 60;

    fn seg(seq: u32, ack: u32, flags: u8, payload: &[u8]) -> SegmentIn<'_> {
        SegmentIn {
            seq,
            ack,
            flags,
            payload,
        }
    }

    /// An exchange past its SYN-ACK, with the request segment it sent.
    fn connected() -> Exchange {
        let mut x = Exchange::new(ISN, REQ);
        assert_eq!(
            x.syn(),
            SegmentOut {
                seq: ISN,
                ack: 0,
                flags: SYN,
                with_request: false
            }
        );
        let step = x
            .on_segment(&seg(THEIRS, ISN.wrapping_add(1), SYN | ACK, &[]))
            .unwrap();
        assert_eq!(
            step,
            Step {
                send: Some(SegmentOut {
                    seq: ISN.wrapping_add(1),
                    ack: THEIRS + 1,
                    flags: ACK | PSH,
                    with_request: true
                }),
                verdict: None
            }
        );
        x
    }

    fn after_request() -> u32 {
        ISN.wrapping_add(1 + REQ as u32)
    }

    #[test]
    fn the_status_line_in_the_first_data_segment_ends_it_with_a_rst() {
        for (answer, status) in [
            (&b"HTTP/1.1 200 OK\r\nServer: nginx\r\n\r\nhello"[..], 200),
            (b"HTTP/1.1 503 Service Temporarily Unavailable\r\n", 503),
            (b"HTTP/1.0 404 Not Found\r\n", 404),
            (b"HTTP/1.1 204\r\n\r\n", 204),
        ] {
            let mut x = connected();
            let step = x
                .on_segment(&seg(THEIRS + 1, after_request(), ACK | PSH, answer))
                .unwrap();
            assert_eq!(step.verdict, Some(Verdict::Status(status)));
            assert_eq!(
                step.send,
                Some(SegmentOut {
                    seq: after_request(),
                    ack: THEIRS + 1 + answer.len() as u32,
                    flags: RST | ACK,
                    with_request: false
                })
            );
            assert!(x.is_done());
            // What is still in flight is absorbed.
            let late = seg(
                THEIRS + 1 + answer.len() as u32,
                after_request(),
                ACK | FIN,
                &[],
            );
            assert_eq!(x.on_segment(&late), Ok(Step::default()));
        }
    }

    #[test]
    fn a_status_line_in_pieces_is_acknowledged_until_whole() {
        let mut x = connected();
        // The backend acknowledges the request without data first.
        assert_eq!(
            x.on_segment(&seg(THEIRS + 1, after_request(), ACK, &[])),
            Ok(Step::default())
        );
        let step = x
            .on_segment(&seg(THEIRS + 1, after_request(), ACK, b"HTTP/1."))
            .unwrap();
        assert_eq!(step.verdict, None);
        assert_eq!(
            step.send,
            Some(SegmentOut {
                seq: after_request(),
                ack: THEIRS + 8,
                flags: ACK,
                with_request: false
            })
        );
        // A retransmission of what we have: a duplicate ACK, nothing read twice.
        let step = x
            .on_segment(&seg(THEIRS + 1, after_request(), ACK, b"HTTP/1."))
            .unwrap();
        assert_eq!(step.send.map(|s| s.ack), Some(THEIRS + 8));
        assert_eq!(step.verdict, None);
        let step = x
            .on_segment(&seg(THEIRS + 8, after_request(), ACK, b"1 302 Found\r\n"))
            .unwrap();
        assert_eq!(step.verdict, Some(Verdict::Status(302)));
        assert_eq!(step.send.map(|s| s.flags), Some(RST | ACK));
    }

    #[test]
    fn refusals_resets_closes_and_garbage_are_verdicts() {
        // RST to the SYN.
        let mut x = Exchange::new(ISN, REQ);
        let step = x
            .on_segment(&seg(0, ISN.wrapping_add(1), RST | ACK, &[]))
            .unwrap();
        assert_eq!(step.verdict, Some(Verdict::Refused));
        assert_eq!(step.send, None);
        // RST once connected.
        let mut x = connected();
        let step = x.on_segment(&seg(THEIRS + 1, 0, RST, &[])).unwrap();
        assert_eq!(step.verdict, Some(Verdict::Reset));
        // FIN before any status line.
        let mut x = connected();
        let step = x
            .on_segment(&seg(THEIRS + 1, after_request(), ACK | FIN, b"HTTP/1.1 2"))
            .unwrap();
        assert_eq!(step.verdict, Some(Verdict::Closed));
        assert_eq!(step.send.map(|s| s.ack), Some(THEIRS + 1 + 10 + 1));
        // No HTTP at all.
        for junk in [
            &b"SSH-2.0-OpenSSH_9.2\r\n"[..],
            b"HTTP/2 200\r\n",
            b"HTTP/1.1 2x0 OK",
        ] {
            let mut x = connected();
            let step = x
                .on_segment(&seg(THEIRS + 1, after_request(), ACK, junk))
                .unwrap();
            assert_eq!(step.verdict, Some(Verdict::Garbled), "{junk:?}");
        }
    }

    #[test]
    fn segments_of_other_exchanges_are_stray() {
        let mut x = Exchange::new(ISN, REQ);
        // A SYN-ACK or RST for another ISN.
        assert_eq!(x.on_segment(&seg(THEIRS, ISN, SYN | ACK, &[])), Err(Stray));
        assert_eq!(x.on_segment(&seg(THEIRS, 5, RST | ACK, &[])), Err(Stray));
        // Data before the connection.
        assert_eq!(
            x.on_segment(&seg(THEIRS, ISN.wrapping_add(1), ACK, b"HTTP/1.1 200 OK")),
            Err(Stray)
        );
        let mut x = connected();
        // An ACK beyond what we sent, a RST out of the window.
        assert_eq!(
            x.on_segment(&seg(
                THEIRS + 1,
                after_request() + 1,
                ACK,
                b"HTTP/1.1 200 OK"
            )),
            Err(Stray)
        );
        assert_eq!(x.on_segment(&seg(THEIRS + 99, 0, RST, &[])), Err(Stray));
        // A SYN-ACK again (our request lost): the request again.
        let step = x
            .on_segment(&seg(THEIRS, ISN.wrapping_add(1), SYN | ACK, &[]))
            .unwrap();
        assert_eq!(step.send.map(|s| s.with_request), Some(true));
        assert!(!x.is_done());
    }

    #[test]
    fn abandoning_resets_only_a_connection() {
        let mut x = Exchange::new(ISN, REQ);
        assert_eq!(x.abandon(), None);
        let mut x = connected();
        assert_eq!(
            x.abandon(),
            Some(SegmentOut {
                seq: after_request(),
                ack: THEIRS + 1,
                flags: RST | ACK,
                with_request: false
            })
        );
        assert_eq!(x.abandon(), None);
    }

    #[test]
    fn status_lines() {
        assert_eq!(status_line(b"HTTP/1.1 200 OK", false), Some(Ok(200)));
        assert_eq!(status_line(b"HTTP/1.1 200", false), None);
        assert_eq!(status_line(b"HTTP/1.1 200", true), Some(Ok(200)));
        assert_eq!(status_line(b"HTTP/1.1 20", false), None);
        assert_eq!(status_line(b"HTTP/1.1 20", true), None);
        assert_eq!(status_line(b"HTT", false), None);
        assert_eq!(status_line(b"HTX", false), Some(Err(())));
        assert_eq!(status_line(b"", false), None);
        assert_eq!(status_line(b"", true), None);
        assert_eq!(status_line(b"HTTP/1.1 2x", false), Some(Err(())));
        assert_eq!(status_line(b"HTTP/1.1x200 OK\r\n", false), Some(Err(())));
        assert_eq!(status_line(b"HTTP/ 200 OK", false), Some(Err(())));
    }

    #[test]
    fn the_longest_request_fits_one_segment() {
        use eip_dataplane::check_spec::{MAX_HTTP_HOST, MAX_HTTP_PATH};
        let path = format!("/{}", "a".repeat(MAX_HTTP_PATH - 1));
        let host = "h".repeat(MAX_HTTP_HOST);
        assert!(request(&path, &host).len() <= crate::backends::codec::MAX_TCP_PAYLOAD);
    }

    #[test]
    fn the_request_is_a_plain_get() {
        assert_eq!(
            request("/healthz", "10.1.0.20"),
            b"GET /healthz HTTP/1.1\r\nHost: 10.1.0.20\r\nConnection: close\r\nUser-Agent: eipd-check\r\n\r\n"
        );
    }
}
