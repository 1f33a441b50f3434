//! The control socket: a Unix stream socket speaking [`crate::api`]'s
//! newline-delimited JSON, served on its own threads.
//!
//! # Wiring it into the daemon
//!
//! ```text
//! use eip_control::{server, state};
//! use std::sync::Arc;
//!
//! let store = state::StateFile::new(state_path);
//! // The state file if present (same spec, same version), else the TOML at
//! // version 1 (then saved). The resolver fills next-hop MACs in; None if none.
//! let boot = store.boot(&config_path, Some(&resolver))?;
//! let (publisher, subscribers) = swap::channel(Arc::clone(&boot.tables), workers);
//! // ... start the workers with `subscribers` ...
//! let control = Arc::new(
//!     state::ControlPlane::new(store, boot, publisher) // or a TableSink wrapping it
//!         .with_resolver(Arc::new(resolver))
//!         .with_stats(Arc::new(move || summed_worker_counters()))
//!         .with_health(Arc::new(move |path: &str| prober_snapshot(path)))
//!         .with_ack_timeout(Duration::from_secs(2)),
//! );
//! let server = server::spawn(&socket_path, Arc::clone(&control), server::ServerConfig::default())?;
//! // Every other change goes through the same single writer:
//! control.set_path_health(&[("sha-bj-telecom", Health::Down)])?; // the prober
//! control.refresh()?; // the neighbour table changed
//! // ...
//! drop(server); // stops accepting, disconnects clients, removes the socket file
//! ```
//!
//! The sink's `publish` runs on the client thread that carries the change
//! (holding the writer lock), so it must be `Send`. New tables go only through
//! the [`ControlPlane`]: a second publisher would break the version sequence.
//!
//! # Bounds
//!
//! - At most [`ServerConfig::max_clients`] connections. When they are all taken,
//!   a new operator still gets in: the connection idle the longest is closed to
//!   make room, if it has been idle at least [`ServerConfig::evict_idle_after`]
//!   (so idle clients cannot lock operators out). Only when every connection is
//!   busy or recently active is the new one told `busy` and closed. One thread
//!   per connection: simple, and the bound keeps it small.
//! - A request line longer than [`ServerConfig::max_request_bytes`] is answered
//!   `too_large` and the connection closed.
//! - A request must be complete within [`ServerConfig::request_timeout`] of its
//!   first byte (else `timeout`, connection closed); an idle connection is closed
//!   after [`ServerConfig::idle_timeout`]; a client that does not read its reply
//!   is dropped after [`ServerConfig::write_timeout`].
//!
//! Changes are applied one at a time by [`ControlPlane`]'s single writer; queries
//! run concurrently. Nothing here touches a worker: the data plane forwards on,
//! whatever a client sends.
//!
//! # The socket file
//!
//! Created owner-only (0600) without a window in which anyone else could connect:
//! it is bound inside a fresh 0700 directory next to its final path, chmodded,
//! then renamed into place. A socket file nobody listens on (a crashed daemon's)
//! is replaced; if a daemon answers on it, [`spawn`] refuses. On shutdown the file
//! is removed, unless it is no longer ours (another daemon replaced it).

mod audit;
mod clients;
mod reader;

use audit::{audit, Peer};
use clients::{Activity, Clients, Slot};
use reader::{LineReader, ReadError};

use crate::api::{ApiError, ErrorCode, Reply, Request, MAX_REQUEST_BYTES};
use crate::state::ControlPlane;
use std::fs;
use std::io::{self, Write};
use std::net::Shutdown;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Where `eipd` listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/eipd/control.sock";

/// Limits of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Connections served at once. Default 16.
    pub max_clients: usize,
    /// Longest request line in bytes. Default [`MAX_REQUEST_BYTES`] (1 MiB).
    pub max_request_bytes: usize,
    /// Time from a request's first byte to its newline. Default 10 s.
    pub request_timeout: Duration,
    /// Time a connection may sit between requests. Default 10 min.
    pub idle_timeout: Duration,
    /// Time a reply may take to be taken by the client. Default 10 s.
    pub write_timeout: Duration,
    /// When every slot is taken, a connection idle this long is closed to make
    /// room for a new one. Default 1 s.
    pub evict_idle_after: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_clients: 16,
            max_request_bytes: MAX_REQUEST_BYTES,
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(600),
            write_timeout: Duration::from_secs(10),
            evict_idle_after: Duration::from_secs(1),
        }
    }
}

/// Why the socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("another daemon is listening on {path}")]
    InUse { path: PathBuf },
    #[error("{path} exists and is not a socket; refusing to replace it")]
    NotASocket { path: PathBuf },
    #[error("cannot set up control socket {path} ({step}): {source}")]
    Io {
        path: PathBuf,
        step: &'static str,
        #[source]
        source: io::Error,
    },
}

/// The running server. Dropping it (or [`ServerHandle::stop`]) stops accepting,
/// disconnects the clients (a change in progress completes first), waits for
/// the threads and removes the socket file.
#[derive(Debug)]
pub struct ServerHandle {
    path: PathBuf,
    /// (device, inode) of our socket file, to tell it from a successor's.
    identity: (u64, u64),
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    stop: AtomicBool,
    clients: Mutex<Clients>,
}

impl Shared {
    fn clients(&self) -> std::sync::MutexGuard<'_, Clients> {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Binds `path` and serves `control` on it from a new thread.
///
/// # Errors
/// [`ServerError::InUse`] if a daemon answers on `path`,
/// [`ServerError::NotASocket`] if `path` is some other file, or the step of the
/// setup that failed.
pub fn spawn(
    path: impl AsRef<Path>,
    control: Arc<ControlPlane>,
    config: ServerConfig,
) -> Result<ServerHandle, ServerError> {
    let path = path.as_ref().to_path_buf();
    let (listener, identity) = bind(&path)?;
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        clients: Mutex::new(Clients::default()),
    });
    let accept = {
        let shared = Arc::clone(&shared);
        thread::Builder::new()
            .name("eip-control".into())
            .spawn(move || accept_loop(listener, control, config, shared))
            .map_err(|source| ServerError::Io {
                path: path.clone(),
                step: "spawn thread",
                source,
            })?
    };
    Ok(ServerHandle {
        path,
        identity,
        shared,
        accept: Some(accept),
    })
}

impl ServerHandle {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops the server (same as dropping the handle).
    pub fn stop(self) {}

    fn is_ours(&self) -> bool {
        identity(&self.path) == Some(self.identity)
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        let ours = self.is_ours();
        // Wake the blocking accept with a connection of our own; the loop sees
        // `stop` first thing.
        let woke = ours && UnixStream::connect(&self.path).is_ok();
        if ours {
            let _ = fs::remove_file(&self.path);
        }
        if let Some(accept) = self.accept.take() {
            // If the file is gone or someone else's, accept cannot be woken:
            // leave the thread blocked rather than hang the caller.
            if woke {
                let _ = accept.join();
            }
        }
        let (streams, threads) = {
            let mut clients = self.shared.clients();
            (
                std::mem::take(&mut clients.streams),
                std::mem::take(&mut clients.threads),
            )
        };
        for slot in streams.values() {
            let _ = slot.stream.shutdown(Shutdown::Both);
        }
        for t in threads {
            let _ = t.join();
        }
    }
}

fn identity(path: &Path) -> Option<(u64, u64)> {
    fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

fn io_error<'a>(path: &'a Path, step: &'static str) -> impl FnOnce(io::Error) -> ServerError + 'a {
    move |source| ServerError::Io {
        path: path.to_path_buf(),
        step,
        source,
    }
}

/// Clears a stale socket file, then binds race-free (see the module docs).
fn bind(path: &Path) -> Result<(UnixListener, (u64, u64)), ServerError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path) {
            Ok(_) => {
                return Err(ServerError::InUse {
                    path: path.to_path_buf(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                fs::remove_file(path).map_err(io_error(path, "remove stale socket"))?;
            }
            Err(e) => return Err(io_error(path, "probe existing socket")(e)),
        },
        Ok(_) => {
            return Err(ServerError::NotASocket {
                path: path.to_path_buf(),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(path, "inspect path")(e)),
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir).map_err(io_error(path, "create directory"))?;
    static STAGING: AtomicU64 = AtomicU64::new(0);
    let staging = dir.join(format!(
        ".eipd-{}-{}",
        std::process::id(),
        STAGING.fetch_add(1, Ordering::Relaxed)
    ));
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(io_error(path, "create staging directory"))?;
    let staged = staging.join("s");
    let bound = (|| {
        let listener = UnixListener::bind(&staged).map_err(io_error(path, "bind"))?;
        fs::set_permissions(&staged, fs::Permissions::from_mode(0o600))
            .map_err(io_error(path, "chmod 0600"))?;
        fs::rename(&staged, path).map_err(io_error(path, "move into place"))?;
        Ok(listener)
    })();
    let _ = fs::remove_file(&staged);
    let _ = fs::remove_dir(&staging);
    let listener = bound?;
    let id = identity(path).ok_or_else(|| {
        io_error(path, "inspect socket")(io::Error::from(io::ErrorKind::NotFound))
    })?;
    Ok((listener, id))
}

fn accept_loop(
    listener: UnixListener,
    control: Arc<ControlPlane>,
    config: ServerConfig,
    shared: Arc<Shared>,
) {
    let config = Arc::new(config);
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::Acquire) {
            break;
        }
        let stream = match conn {
            Ok(s) => s,
            Err(_) => {
                // Out of file descriptors and the like: back off, do not spin.
                thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let mut clients = shared.clients();
        clients.threads.retain(|t| !t.is_finished());
        if clients.active() >= config.max_clients && !clients.evict_idlest(config.evict_idle_after)
        {
            drop(clients);
            let busy = ApiError::new(
                ErrorCode::Busy,
                format!(
                    "{} clients are connected already; try again later",
                    config.max_clients
                ),
            );
            refuse(stream, control.version(), busy);
            continue;
        }
        let Ok(handle) = stream.try_clone() else {
            continue;
        };
        let id = clients.next_id;
        clients.next_id += 1;
        let activity = Arc::new(Activity::new());
        clients.streams.insert(
            id,
            Slot {
                stream: handle,
                activity: Arc::clone(&activity),
                evicted: false,
            },
        );
        let spawned = {
            let (control, config, shared) = (
                Arc::clone(&control),
                Arc::clone(&config),
                Arc::clone(&shared),
            );
            thread::Builder::new()
                .name(format!("eip-control-{id}"))
                .spawn(move || {
                    serve(stream, &control, &config, &shared.stop, &activity);
                    shared.clients().streams.remove(&id);
                })
        };
        match spawned {
            Ok(t) => clients.threads.push(t),
            Err(_) => {
                clients.streams.remove(&id);
            }
        }
    }
}

/// Answers `error` and closes, without waiting long for a slow reader.
fn refuse(mut stream: UnixStream, version: u64, error: ApiError) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = stream.write_all(Reply::error(version, error).to_line().as_bytes());
}

/// One connection: requests in, replies out, until EOF, an error or stop.
fn serve(
    mut stream: UnixStream,
    control: &ControlPlane,
    config: &ServerConfig,
    stop: &AtomicBool,
    activity: &Activity,
) {
    let _ = stream.set_write_timeout(Some(config.write_timeout));
    let peer = Peer::of(&stream);
    let mut reader = LineReader::new(config);
    while !stop.load(Ordering::Acquire) {
        let line = match reader.next_line(&mut stream) {
            Ok(Some(line)) => line,
            Ok(None) | Err(ReadError::Idle | ReadError::Truncated | ReadError::Io) => return,
            Err(ReadError::TooLarge) => {
                let e = ApiError::new(
                    ErrorCode::TooLarge,
                    format!(
                        "request is longer than {} bytes; closing the connection",
                        config.max_request_bytes
                    ),
                );
                refuse(stream, control.version(), e);
                return;
            }
            Err(ReadError::Timeout) => {
                let e = ApiError::new(
                    ErrorCode::Timeout,
                    format!(
                        "request not completed within {:?}; closing the connection",
                        config.request_timeout
                    ),
                );
                refuse(stream, control.version(), e);
                return;
            }
        };
        activity.in_request.store(true, Ordering::Relaxed);
        let reply = match Request::parse(&line) {
            Ok(request) => {
                let changes = request.command.changes();
                let reply = control.handle(request);
                if changes {
                    audit(&peer, &line, &reply);
                }
                reply
            }
            Err(e) => Reply::error(control.version(), e),
        };
        let written = stream.write_all(reply.to_line().as_bytes());
        activity.touch();
        activity.in_request.store(false, Ordering::Relaxed);
        if written.is_err() {
            return;
        }
    }
}
