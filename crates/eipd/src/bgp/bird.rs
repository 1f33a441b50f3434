//! BIRD 2 as a child of `eipd`: started under `setpriv --pdeathsig KILL` by the
//! spawner thread (`spawner.rs`), so the kernel kills it when `eipd` dies (a
//! killed `eipd` takes its BGP sessions down with it, and the routers withdraw
//! its routes within the TCP teardown), and driven over its control socket
//! (what `birdc` does).
//!
//! The control socket speaks lines `CODE-text` (more follows), ` text` (more of
//! the same code) and `CODE text` (last line); codes 8000 and up are errors.

use serde::Serialize;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why BIRD could not be started or asked something.
#[derive(Debug, thiserror::Error)]
pub enum BirdError {
    #[error(
        "cannot run {program}: {source} (install bird2 and util-linux: scripts/install-deps.sh)"
    )]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("BIRD refuses the generated configuration {conf}: {message}")]
    Config { conf: PathBuf, message: String },
    #[error("BIRD's control socket {socket}: {source}")]
    Socket {
        socket: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("BIRD answered {command:?} with error {code}: {message}")]
    Refused {
        command: String,
        code: u16,
        message: String,
    },
    #[error("BIRD did not open its control socket {socket} within {waited:?}")]
    NotReady { socket: PathBuf, waited: Duration },
}

/// One BIRD process and its control socket.
pub struct Bird {
    child: Child,
    socket: PathBuf,
}

impl Bird {
    /// Checks `conf` with `bird -p`, starts `bird -f` on it and waits until its
    /// control socket answers.
    ///
    /// # Errors
    /// [`BirdError`]: BIRD or setpriv missing, configuration refused, no socket.
    pub fn start(bird: &str, conf: &Path, socket: &Path) -> Result<Bird, BirdError> {
        Bird::check(bird, conf)?;
        let _ = std::fs::remove_file(socket);
        let mut command = Command::new("setpriv");
        command
            .args(["--pdeathsig", "KILL", "--", bird, "-f", "-c"])
            .arg(conf)
            .arg("-s")
            .arg(socket)
            .stdin(Stdio::null());
        // From the thread whose death the kernel reports at once (spawner.rs).
        let child = crate::spawner::spawn(command).map_err(|source| BirdError::Spawn {
            program: "setpriv".into(),
            source,
        })?;
        let mut bird = Bird {
            child,
            socket: socket.into(),
        };
        let waited = Duration::from_secs(5);
        let start = Instant::now();
        loop {
            if bird.command("show status").is_ok() {
                return Ok(bird);
            }
            if start.elapsed() > waited || !bird.running() {
                bird.kill();
                return Err(BirdError::NotReady {
                    socket: socket.into(),
                    waited,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `bird -p`: BIRD's own parser on `conf`, without running anything.
    ///
    /// # Errors
    /// [`BirdError::Spawn`], or [`BirdError::Config`] with BIRD's message.
    pub fn check(bird: &str, conf: &Path) -> Result<(), BirdError> {
        let check = Command::new(bird)
            .arg("-p")
            .arg("-c")
            .arg(conf)
            .output()
            .map_err(|source| BirdError::Spawn {
                program: bird.into(),
                source,
            })?;
        if !check.status.success() {
            return Err(BirdError::Config {
                conf: conf.into(),
                message: String::from_utf8_lossy(&check.stderr).trim().to_string(),
            });
        }
        Ok(())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process still runs (reaps it if not).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends one command; returns the reply's lines (code, text).
    ///
    /// # Errors
    /// The socket failed, or BIRD answered with an error code.
    pub fn command(&self, command: &str) -> Result<Vec<(u16, String)>, BirdError> {
        let socket_err = |source| BirdError::Socket {
            socket: self.socket.clone(),
            source,
        };
        let stream = UnixStream::connect(&self.socket).map_err(socket_err)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(socket_err)?;
        let mut reader = BufReader::new(stream.try_clone().map_err(socket_err)?);
        read_reply(&mut reader).map_err(socket_err)?; // the greeting
        (&stream)
            .write_all(format!("{command}\n").as_bytes())
            .map_err(socket_err)?;
        let lines = read_reply(&mut reader).map_err(socket_err)?;
        match lines.last() {
            Some(&(code, ref message)) if code >= 8000 => Err(BirdError::Refused {
                command: command.into(),
                code,
                message: message.clone(),
            }),
            _ => Ok(lines),
        }
    }

    /// `enable` or `disable` of one protocol.
    ///
    /// # Errors
    /// As [`Self::command`].
    pub fn set_enabled(&self, protocol: &str, enabled: bool) -> Result<(), BirdError> {
        let verb = if enabled { "enable" } else { "disable" };
        self.command(&format!("{verb} {protocol}")).map(|_| ())
    }

    /// `configure "conf"`: BIRD reads `conf` and keeps every protocol whose
    /// configuration did not change; a changed export filter re-sends the
    /// routes through the new one (plain `configure`, not `soft`, which would
    /// leave routes already sent with their old attributes). Returns BIRD's
    /// last line (`Reconfigured`, `Reconfiguration in progress`).
    ///
    /// # Errors
    /// As [`Self::command`]; a configuration BIRD refuses is an error and
    /// leaves the one in force.
    pub fn configure(&self, conf: &Path) -> Result<String, BirdError> {
        let lines = self.command(&format!("configure \"{}\"", conf.display()))?;
        Ok(lines.last().map(|(_, t)| t.clone()).unwrap_or_default())
    }

    /// The BGP sessions, from `show protocols`.
    ///
    /// # Errors
    /// As [`Self::command`].
    pub fn sessions(&self) -> Result<Vec<SessionRow>, BirdError> {
        Ok(parse_protocols(&self.command("show protocols")?))
    }

    /// Asks BIRD to shut down (its sessions end with a Cease notification),
    /// then kills it if it has not exited after `wait`.
    pub fn shutdown(mut self, wait: Duration) {
        let _ = self.command("down");
        let start = Instant::now();
        while self.running() && start.elapsed() < wait {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
    }

    fn kill(&mut self) {
        if self.running() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads lines up to the last one of a reply.
fn read_reply(reader: &mut impl BufRead) -> io::Result<Vec<(u16, String)>> {
    let mut lines = Vec::new();
    let mut code = 0u16;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "BIRD closed the control socket mid-reply",
            ));
        }
        let line = line.trim_end_matches('\n');
        match parse_line(line) {
            Some((c, last, text)) => {
                code = c;
                lines.push((c, text.to_string()));
                if last {
                    return Ok(lines);
                }
            }
            None => lines.push((code, line.trim_start_matches(' ').to_string())),
        }
    }
}

/// `CODE-text` (more follows) or `CODE text` (last); `None` for a ` text`
/// continuation.
fn parse_line(line: &str) -> Option<(u16, bool, &str)> {
    let code = line
        .get(..4)
        .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))?;
    let rest = line.get(4..).unwrap_or("");
    let last = !rest.starts_with('-');
    Some((code.parse().ok()?, last, rest.get(1..).unwrap_or("")))
}

/// One BGP protocol of `show protocols`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionRow {
    pub protocol: String,
    /// BIRD's protocol state: up, start, down...
    pub state: String,
    /// BGP state and the last error: `Established`, `Active  Socket: ...`.
    pub info: String,
}

impl SessionRow {
    pub fn established(&self) -> bool {
        self.info.starts_with("Established")
    }
}

/// The BGP rows of a `show protocols` reply (code 1002).
fn parse_protocols(lines: &[(u16, String)]) -> Vec<SessionRow> {
    lines
        .iter()
        .filter(|(code, _)| *code == 1002)
        .filter_map(|(_, text)| {
            let words: Vec<&str> = text.split_whitespace().collect();
            if words.get(1) != Some(&"BGP") || words.len() < 5 {
                return None;
            }
            // Name Proto Table State Since(1 or 2 words) Info...
            let since_words = if words.get(5).is_some_and(|w| w.contains(':')) {
                2
            } else {
                1
            };
            Some(SessionRow {
                protocol: words[0].into(),
                state: words[3].into(),
                info: words.get(4 + since_words..).unwrap_or(&[]).join(" "),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply as BIRD 2.0.12 sends it (captured on the testbed).
    const SHOW_PROTOCOLS: &str = "2002-Name       Proto      Table      State  Since         Info\n\
        1002-device1    Device     ---        up     20:40:01.123  \n\
        \x20eip_p0     Static     master4    down   20:40:01.123  \n\
        \x20eip_n0     BGP        ---        up     20:40:02.456  Established   \n\
        \x20eip_n1     BGP        ---        start  20:40:01.123  Active        Socket: Connection refused\n\
        0000 \n";

    #[test]
    fn replies_are_read_to_their_last_line_with_continuations_under_their_code() {
        let mut r = SHOW_PROTOCOLS.as_bytes();
        let lines = read_reply(&mut r).unwrap();
        assert_eq!(lines.len(), 6);
        assert_eq!(lines[0].0, 2002);
        assert_eq!(lines[3].0, 1002);
        assert_eq!(lines[5], (0, String::new()));
        let sessions = parse_protocols(&lines);
        assert_eq!(
            sessions,
            vec![
                SessionRow {
                    protocol: "eip_n0".into(),
                    state: "up".into(),
                    info: "Established".into()
                },
                SessionRow {
                    protocol: "eip_n1".into(),
                    state: "start".into(),
                    info: "Active Socket: Connection refused".into()
                },
            ]
        );
        assert!(sessions[0].established() && !sessions[1].established());
    }

    #[test]
    fn dates_with_a_day_are_skipped_too() {
        let lines = vec![(
            1002,
            "eip_n0     BGP        ---        up     2026-11-30 20:40:02  Established".to_string(),
        )];
        assert_eq!(parse_protocols(&lines)[0].info, "Established");
    }

    #[test]
    fn error_codes_and_a_cut_reply_are_told_apart() {
        assert_eq!(
            parse_line("8003 No such protocol"),
            Some((8003, true, "No such protocol"))
        );
        assert_eq!(
            parse_line("0001 BIRD 2.0.12 ready."),
            Some((1, true, "BIRD 2.0.12 ready."))
        );
        assert_eq!(parse_line("1002-x"), Some((1002, false, "x")));
        assert_eq!(parse_line(" more"), None);
        let mut cut = "1002-partial\n".as_bytes();
        assert!(read_reply(&mut cut).is_err());
    }
}
