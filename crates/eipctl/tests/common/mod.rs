//! The harness of the control-socket tests: a running daemon minus AF_XDP (state
//! file, control plane, fake workers that `refresh()` like the poll loop, the
//! server on a temporary socket) and helpers to call it.
#![allow(dead_code, unused_imports)]

pub use eip_control::api::{Data, ErrorCode, Reply};
pub use eip_control::client::Client;
pub use eip_control::health::{HealthConfig, PathHealth};
pub use eip_control::server::{self, ServerConfig, ServerError, ServerHandle};
pub use eip_control::state::{ControlPlane, Origin, StateFile};
pub use eip_dataplane::counters::Counters;
pub use eip_dataplane::swap::{self, Subscriber};
pub use eip_dataplane::tables::{PathState, PopSpec, Tables};
pub use std::fs;
pub use std::io::{Read, Write};
pub use std::os::unix::fs::PermissionsExt;
pub use std::os::unix::net::{UnixListener, UnixStream};
pub use std::path::{Path, PathBuf};
pub use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
pub use std::sync::Arc;
pub use std::thread::{self, JoinHandle};
pub use std::time::{Duration, Instant};

pub const EXAMPLE: &str = include_str!("../../../../docs/example-pop.toml");
pub const WORKERS: usize = 2;

pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    // Short: a socket path must fit in 108 bytes.
    let dir = std::env::temp_dir().join(format!(
        "eipcs-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Worker threads that do what the poll loop does with tables: `refresh()` on
/// every iteration. Each can be paused to play a stuck worker.
pub struct Workers {
    pub stop: Arc<AtomicBool>,
    pub paused: Vec<Arc<AtomicBool>>,
    pub seen: Vec<Arc<AtomicU64>>,
    pub threads: Vec<JoinHandle<()>>,
}

impl Workers {
    pub fn start(subscribers: Vec<Subscriber<Tables>>) -> Workers {
        let stop = Arc::new(AtomicBool::new(false));
        let mut w = Workers {
            stop: Arc::clone(&stop),
            paused: Vec::new(),
            seen: Vec::new(),
            threads: Vec::new(),
        };
        for mut sub in subscribers {
            // Adopted before the thread runs, as a worker has adopted the boot
            // tables before it polls: a test that changes nothing reads the
            // boot version, however late the threads are first scheduled.
            let adopted = sub.refresh().version;
            let (stop, paused, seen) = (
                Arc::clone(&stop),
                Arc::new(AtomicBool::new(false)),
                Arc::new(AtomicU64::new(adopted)),
            );
            w.paused.push(Arc::clone(&paused));
            w.seen.push(Arc::clone(&seen));
            w.threads.push(thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    if !paused.load(Ordering::Acquire) {
                        seen.store(sub.refresh().version, Ordering::Release);
                    }
                    thread::sleep(Duration::from_micros(50));
                }
            }));
        }
        w
    }

    pub fn min_seen(&self) -> u64 {
        self.seen
            .iter()
            .map(|s| s.load(Ordering::Acquire))
            .min()
            .unwrap_or(0)
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

pub struct Rig {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub control: Arc<ControlPlane>,
    pub server: Option<ServerHandle>,
    pub workers: Workers,
}

/// A running daemon minus AF_XDP: state, control plane, workers, server.
pub fn rig(tag: &str, server_config: ServerConfig) -> Rig {
    let dir = temp_dir(tag);
    let config = dir.join("pop.toml");
    fs::write(&config, EXAMPLE).unwrap();
    start(dir, config, server_config)
}

pub fn start(dir: PathBuf, config: PathBuf, server_config: ServerConfig) -> Rig {
    let store = StateFile::new(dir.join("state.json"));
    let boot = store.boot(&config, None).unwrap();
    let (publisher, subscribers) = swap::channel(Arc::clone(&boot.tables), WORKERS);
    let workers = Workers::start(subscribers);
    let stats = || {
        let mut c = Counters::new(3, 2);
        c.eips.inbound(0).add(1000);
        c.path[0].add(1064);
        c
    };
    let health = |path: &str| {
        (path == "sha-bj-telecom").then(|| {
            PathHealth::new(HealthConfig::default(), Duration::ZERO)
                .unwrap()
                .snapshot()
        })
    };
    let control = Arc::new(
        ControlPlane::new(store, boot, publisher)
            .with_stats(Arc::new(stats))
            .with_health(Arc::new(health))
            .with_ack_timeout(Duration::from_millis(500)),
    );
    let socket = dir.join("ctl.sock");
    let server = server::spawn(&socket, Arc::clone(&control), server_config).unwrap();
    Rig {
        dir,
        config,
        socket,
        control,
        server: Some(server),
        workers,
    }
}

impl Rig {
    pub fn client(&self) -> Client {
        Client::connect(&self.socket, Duration::from_secs(10)).unwrap()
    }

    /// The last committed version on disk: the state file and its journal.
    pub fn state_version(&self) -> u64 {
        StateFile::new(self.dir.join("state.json"))
            .load()
            .unwrap()
            .expect("a state file")
            .version
    }
}

pub fn call(client: &mut Client, line: &str) -> Reply {
    let reply = client.call_raw(line).unwrap();
    serde_json::from_str(&reply).unwrap_or_else(|e| panic!("{e}: {reply}"))
}

pub fn ok(client: &mut Client, line: &str) -> Reply {
    let reply = call(client, line);
    assert!(reply.ok, "{line}\n -> {reply:?}");
    reply
}

pub fn refused(client: &mut Client, line: &str, code: ErrorCode) -> String {
    let reply = call(client, line);
    let e = reply.error.unwrap_or_else(|| panic!("{line} was accepted"));
    assert_eq!(e.code, code, "{line}: {}", e.message);
    e.message
}

pub fn spec(client: &mut Client) -> (u64, PopSpec) {
    let reply = ok(client, r#"{"cmd":"show_spec"}"#);
    match reply.data {
        Some(Data::Spec { spec }) => (reply.version, *spec),
        other => panic!("{other:?}"),
    }
}

pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

/// Runs the `eipctl` binary against `socket`: exit status, stdout, stderr.
pub fn eipctl(socket: &Path, args: &[&str]) -> (i32, String, String) {
    eipctl_in(Path::new("."), socket, args)
}

/// [`eipctl`] with `dir` as its working directory (relative paths resolve there).
pub fn eipctl_in(dir: &Path, socket: &Path, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eipctl"))
        .current_dir(dir)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
