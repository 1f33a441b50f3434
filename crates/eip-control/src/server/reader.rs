//! Request lines out of a stream, within the size and time bounds.

use super::ServerConfig;
use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Why no request line came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadError {
    /// Nothing arrived within the idle timeout.
    Idle,
    /// A request was started but not finished in time.
    Timeout,
    /// The line is longer than allowed.
    TooLarge,
    /// The client closed in the middle of a request.
    Truncated,
    Io,
}

/// Splits a stream into request lines within the size and time bounds.
pub(super) struct LineReader {
    buf: Vec<u8>,
    chunk: Box<[u8]>,
    /// Bytes of `buf` known to hold no newline.
    scanned: usize,
    /// When the request in `buf` must be complete.
    deadline: Option<Instant>,
    max: usize,
    request_timeout: Duration,
    idle_timeout: Duration,
}

impl LineReader {
    pub(super) fn new(config: &ServerConfig) -> Self {
        LineReader {
            buf: Vec::new(),
            chunk: vec![0; 64 * 1024].into_boxed_slice(),
            scanned: 0,
            deadline: None,
            max: config.max_request_bytes,
            request_timeout: config.request_timeout,
            idle_timeout: config.idle_timeout,
        }
    }

    /// The next non-blank line without its `\n` (or `\r\n`); `None` at a clean
    /// end of stream.
    pub(super) fn next_line(
        &mut self,
        stream: &mut UnixStream,
    ) -> Result<Option<Vec<u8>>, ReadError> {
        loop {
            if let Some(line) = self.take_line()? {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Ok(Some(line));
            }
            let timeout = match self.deadline {
                None => self.idle_timeout,
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return Err(ReadError::Timeout),
                },
            };
            // A zero timeout would mean "block forever" to the OS.
            let _ = stream.set_read_timeout(Some(timeout.max(Duration::from_millis(1))));
            match stream.read(&mut self.chunk) {
                Ok(0) if self.buf.is_empty() => return Ok(None),
                Ok(0) => return Err(ReadError::Truncated),
                Ok(n) => {
                    if self.buf.is_empty() {
                        self.deadline = Some(Instant::now() + self.request_timeout);
                    }
                    self.buf.extend_from_slice(&self.chunk[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(if self.buf.is_empty() {
                        ReadError::Idle
                    } else {
                        ReadError::Timeout
                    });
                }
                Err(_) => return Err(ReadError::Io),
            }
        }
    }

    /// A complete line from the buffer, if there is one.
    pub(super) fn take_line(&mut self) -> Result<Option<Vec<u8>>, ReadError> {
        let Some(offset) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') else {
            self.scanned = self.buf.len();
            return if self.buf.len() > self.max {
                Err(ReadError::TooLarge)
            } else {
                Ok(None)
            };
        };
        let end = self.scanned + offset;
        if end > self.max {
            return Err(ReadError::TooLarge);
        }
        let mut line: Vec<u8> = self.buf.drain(..=end).collect();
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        self.scanned = 0;
        // What is left is the start of the next request (pipelining).
        self.deadline = (!self.buf.is_empty()).then(|| Instant::now() + self.request_timeout);
        Ok(Some(line))
    }
}
