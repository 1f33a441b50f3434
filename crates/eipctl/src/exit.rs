//! Exit statuses, and how a failure is printed.
//!
//! | status | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | the daemon refused the request (its message on stderr) |
//! | 2 | bad input or usage: arguments (clap's own errors exit 2 too), a configuration or ops file |
//! | 3 | the daemon cannot be reached: no socket, connection refused or closed, no reply in time |

use eip_control::client::ClientError;
use std::process::ExitCode;

/// The daemon refused the request.
pub const REFUSED: u8 = 1;
/// Bad input or usage (clap exits with 2 for its own errors as well).
pub const USAGE: u8 = 2;
/// No usable answer from the daemon.
pub const UNREACHABLE: u8 = 3;

/// For `eipctl --help`.
pub const AFTER_HELP: &str = "\
Subcommands may be abbreviated to any unique prefix: `eipctl sh paths`, `eipctl st`.

Exit status:
  0  done
  1  the daemon refused the request (its message on stderr)
  2  bad input or usage: arguments, a configuration or ops file
  3  the daemon cannot be reached: no socket, connection refused or closed,
     no reply within --timeout";

/// Prints `error` on stderr and gives its exit status: [`UNREACHABLE`] when
/// the daemon could not be asked, [`USAGE`] otherwise.
pub fn fail(error: &anyhow::Error) -> ExitCode {
    eprintln!("eipctl: {}", message(error));
    let client = error.chain().find_map(|e| e.downcast_ref::<ClientError>());
    if let Some(ClientError::Connect { .. }) = client {
        eprintln!("eipctl: is eipd running? (the socket is chosen with --socket)");
    }
    ExitCode::from(if client.is_some() { UNREACHABLE } else { USAGE })
}

/// The error and its causes as `a: b: c`, each cause once: a cause whose text
/// its parent's message already holds (an error that both prints its source
/// and returns it from `source()`) is not repeated.
pub fn message(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    /// An error that prints its source and also returns it.
    #[derive(Debug)]
    struct Repeats {
        path: &'static str,
        source: io::Error,
    }

    impl std::fmt::Display for Repeats {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot read {}: {}", self.path, self.source)
        }
    }

    impl std::error::Error for Repeats {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn each_cause_is_printed_once() {
        let missing = || io::Error::from(io::ErrorKind::NotFound);
        let e = anyhow::Error::from(ClientError::Connect {
            path: "/run/eipd/control.sock".into(),
            source: missing(),
        });
        assert_eq!(
            message(&e),
            format!("cannot connect to /run/eipd/control.sock: {}", missing())
        );
        let e = anyhow::Error::from(Repeats {
            path: "pop.toml",
            source: missing(),
        })
        .context("validating");
        assert_eq!(
            message(&e),
            format!("validating: cannot read pop.toml: {}", missing())
        );
    }
}
