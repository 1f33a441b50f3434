//! The client side of the control socket: a connection that sends [`Request`]s
//! and reads [`Reply`]s. How replies look on a terminal is `eipctl`'s business.

use crate::api::{Reply, Request};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a request got no reply (an error *reply* is not a `ClientError`).
///
/// Each variant's message is its own; the underlying I/O error, when there is
/// one, is its [`source`](std::error::Error::source) and not repeated in the
/// message: print the chain (anyhow's `{:#}`) to see both, once each.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No daemon listens on the path, or it may not be opened.
    #[error("cannot connect to {path}")]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Reading or writing the connection failed.
    #[error("control socket I/O failed")]
    Io(#[source] io::Error),
    /// The reply did not come within the connection's timeout.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("the daemon closed the connection without a reply")]
    Closed,
    #[error("the daemon's reply is not understood: {0}")]
    BadReply(String),
}

/// One connection to the daemon; requests on it are answered in order.
#[derive(Debug)]
pub struct Client {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    timeout: Duration,
}

impl Client {
    /// Connects to `path`. `timeout` bounds each reply (a change waits for the
    /// workers, so allow more than the daemon's acknowledgement timeout).
    ///
    /// # Errors
    /// [`ClientError::Connect`].
    pub fn connect(path: &Path, timeout: Duration) -> Result<Client, ClientError> {
        let connect_error = |source| ClientError::Connect {
            path: path.to_path_buf(),
            source,
        };
        let writer = UnixStream::connect(path).map_err(connect_error)?;
        let timeout = timeout.max(Duration::from_millis(1));
        writer
            .set_read_timeout(Some(timeout))
            .map_err(connect_error)?;
        writer
            .set_write_timeout(Some(timeout))
            .map_err(connect_error)?;
        let reader = BufReader::new(writer.try_clone().map_err(connect_error)?);
        Ok(Client {
            writer,
            reader,
            timeout,
        })
    }

    /// Sends `request` and reads its reply.
    ///
    /// # Errors
    /// Transport failures and unparseable replies.
    pub fn call(&mut self, request: &Request) -> Result<Reply, ClientError> {
        let line = self.call_raw(&request.to_line())?;
        serde_json::from_str(&line).map_err(|e| ClientError::BadReply(format!("{e}: {line}")))
    }

    /// Sends `line` as is (a newline is added if missing) and returns the reply
    /// line without its newline. For debugging and for tests of bad input.
    ///
    /// # Errors
    /// Transport failures; [`ClientError::Closed`] if the daemon hung up,
    /// [`ClientError::Timeout`] if it did not answer in time.
    pub fn call_raw(&mut self, line: &str) -> Result<String, ClientError> {
        let mut sent = self.writer.write_all(line.as_bytes());
        if sent.is_ok() && !line.ends_with('\n') {
            sent = self.writer.write_all(b"\n");
        }
        if let Err(e) = sent {
            // A server that refuses a connection (`busy`) answers and closes before
            // reading: its answer says more than our broken pipe.
            return match self.read_reply() {
                Ok(reply) => Ok(reply),
                Err(_) => Err(self.failed(e)),
            };
        }
        self.read_reply()
    }

    /// Reads one reply line (for a request written by other means).
    ///
    /// # Errors
    /// Transport failures; [`ClientError::Closed`] at end of stream,
    /// [`ClientError::Timeout`] if nothing came in time.
    pub fn read_reply(&mut self) -> Result<String, ClientError> {
        let mut reply = String::new();
        let read = self.reader.read_line(&mut reply);
        if read.map_err(|e| self.failed(e))? == 0 {
            return Err(ClientError::Closed);
        }
        if reply.ends_with('\n') {
            reply.pop();
        }
        Ok(reply)
    }

    /// An I/O error of the connection: the socket timeouts surface as
    /// `WouldBlock` or `TimedOut`.
    fn failed(&self, e: io::Error) -> ClientError {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                ClientError::Timeout(self.timeout)
            }
            _ => ClientError::Io(e),
        }
    }

    /// The raw stream, to write partial requests in tests.
    pub fn stream(&mut self) -> &mut UnixStream {
        &mut self.writer
    }
}
