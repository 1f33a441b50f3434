//! The client side of the control socket: a connection that sends [`Request`]s
//! and reads [`Reply`]s. How replies look on a terminal is `eipctl`'s business.

use crate::api::{Reply, Request};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a request got no reply (an error *reply* is not a `ClientError`).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {path}: {source} (is eipd running? the path is set with --socket)")]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("control socket: {0}")]
    Io(#[from] io::Error),
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
        writer
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .map_err(connect_error)?;
        writer
            .set_write_timeout(Some(timeout.max(Duration::from_millis(1))))
            .map_err(connect_error)?;
        let reader = BufReader::new(writer.try_clone().map_err(connect_error)?);
        Ok(Client { writer, reader })
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
    /// Transport failures; [`ClientError::Closed`] if the daemon hung up.
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
                Err(_) => Err(ClientError::Io(e)),
            };
        }
        self.read_reply()
    }

    /// Reads one reply line (for a request written by other means).
    ///
    /// # Errors
    /// Transport failures; [`ClientError::Closed`] at end of stream.
    pub fn read_reply(&mut self) -> Result<String, ClientError> {
        let mut reply = String::new();
        if self.reader.read_line(&mut reply)? == 0 {
            return Err(ClientError::Closed);
        }
        if reply.ends_with('\n') {
            reply.pop();
        }
        Ok(reply)
    }

    /// The raw stream, to write partial requests in tests.
    pub fn stream(&mut self) -> &mut UnixStream {
        &mut self.writer
    }
}
