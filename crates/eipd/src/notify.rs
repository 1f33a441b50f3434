//! Readiness for systemd's `Type=notify` (`packaging/systemd/eipd.service`).
//!
//! The protocol (sd_notify(3)) is one datagram of newline-separated `KEY=VALUE`
//! lines sent to the Unix datagram socket named by `$NOTIFY_SOCKET`: a path, or
//! `@name` for a socket in the abstract namespace. `eipd run` sends `READY=1` once
//! it forwards (XDP attached, workers started, control socket bound), `STATUS=`
//! lines that `systemctl status` shows, and `STOPPING=1` when it begins to stop.
//! These few lines over `UnixDatagram` replace a dependency; they send nothing
//! unless systemd (or a test) asked by setting the variable.
//!
//! Not sent: `WATCHDOG=1` (the unit sets no `WatchdogSec=`), file descriptors, and
//! nothing to `vsock:` addresses (systemd uses those only for virtual machines).

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Where notifications go; does nothing when the service manager is not listening.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`; a no-op notifier when it is unset or empty.
    ///
    /// # Errors
    /// The variable names an address this cannot reach (`vsock:`, too long), or no
    /// socket could be created.
    pub fn from_env() -> io::Result<Notifier> {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(addr) if !addr.is_empty() => Notifier::to(&addr),
            _ => Ok(Notifier::disabled()),
        }
    }

    /// Sends nothing.
    pub fn disabled() -> Notifier {
        Notifier { target: None }
    }

    /// To this address: a socket path, or `@name` for an abstract socket.
    ///
    /// # Errors
    /// As [`Notifier::from_env`].
    pub fn to(addr: &OsStr) -> io::Result<Notifier> {
        let bytes = addr.as_bytes();
        let address = if let Some(name) = bytes.strip_prefix(b"@") {
            SocketAddr::from_abstract_name(name)?
        } else if bytes.starts_with(b"vsock:") {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "NOTIFY_SOCKET is a vsock address, which eipd does not support",
            ));
        } else {
            SocketAddr::from_pathname(addr)?
        };
        Ok(Notifier {
            target: Some((UnixDatagram::unbound()?, address)),
        })
    }

    /// Whether anything is listening (`NOTIFY_SOCKET` was set).
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// `READY=1`: the service is up; `systemctl start` returns.
    ///
    /// # Errors
    /// The datagram could not be sent.
    pub fn ready(&self, status: &str) -> io::Result<()> {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)))
    }

    /// A new `STATUS=` line for `systemctl status`.
    ///
    /// # Errors
    /// The datagram could not be sent.
    pub fn status(&self, status: &str) -> io::Result<()> {
        self.send(&format!("STATUS={}", one_line(status)))
    }

    /// `STOPPING=1`: the service is shutting down.
    ///
    /// # Errors
    /// The datagram could not be sent.
    pub fn stopping(&self, status: &str) -> io::Result<()> {
        self.send(&format!("STOPPING=1\nSTATUS={}", one_line(status)))
    }

    fn send(&self, message: &str) -> io::Result<()> {
        match &self.target {
            None => Ok(()),
            Some((socket, address)) => socket.send_to_addr(message.as_bytes(), address).map(drop),
        }
    }
}

/// A status must stay one line: a newline would start another `KEY=VALUE`.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn receive(socket: &UnixDatagram) -> String {
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("a notification");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn ready_status_and_stopping_reach_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("eipd-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();

        let n = Notifier::to(path.as_os_str()).unwrap();
        assert!(n.enabled());
        n.ready("forwarding; pop \"sha\"\ntable version 3").unwrap();
        assert_eq!(
            receive(&listener),
            "READY=1\nSTATUS=forwarding; pop \"sha\" table version 3"
        );
        n.status("table version 4").unwrap();
        assert_eq!(receive(&listener), "STATUS=table version 4");
        n.stopping("stopping").unwrap();
        assert_eq!(receive(&listener), "STOPPING=1\nSTATUS=stopping");

        drop(listener);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn abstract_socket_is_reached_with_an_at_sign() {
        let name = format!("eipd-notify-test-{}", std::process::id());
        let listener =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        let n = Notifier::to(OsStr::new(&format!("@{name}"))).unwrap();
        n.ready("up").unwrap();
        assert_eq!(receive(&listener), "READY=1\nSTATUS=up");
    }

    #[test]
    fn nothing_to_notify_is_not_an_error() {
        let n = Notifier::disabled();
        assert!(!n.enabled());
        n.ready("up").unwrap();
        n.stopping("down").unwrap();
        assert!(Notifier::to(OsStr::new("vsock:2:1234")).is_err());
        // A listener that went away is reported, not ignored.
        let gone = std::env::temp_dir().join(format!("eipd-notify-gone-{}", std::process::id()));
        let n = Notifier::to(gone.as_os_str()).unwrap();
        assert!(n.ready("up").is_err());
    }
}
