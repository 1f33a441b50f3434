//! Host facts and scratch space for tests: whether we are root, temporary
//! directories that clean up after themselves, what the installed tshark calls
//! a packet comment, what a binary's `--version` must look like.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// True when this process runs with uid 0 (namespace and XDP tests need it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A fresh directory under the system temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new empty directory whose name contains `tag`, the process id and a counter.
    ///
    /// # Panics
    /// When the directory cannot be created.
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let unique = format!(
            "eip-test-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(unique);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir can be created");
        TempDir(path)
    }

    /// The directory.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// tshark's packet comment field: `frame.comment` since Wireshark 3.6,
/// `pkt_comment` before.
///
/// # Panics
/// When tshark cannot be run (scripts/install-deps.sh installs it).
pub fn tshark_comment_field() -> &'static str {
    let out = std::process::Command::new("tshark")
        .args(["-G", "fields"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run tshark ({e}): apt-get install -y tshark"));
    let fields = String::from_utf8_lossy(&out.stdout);
    if fields
        .lines()
        .any(|l| l.split('\t').nth(2) == Some("frame.comment"))
    {
        "frame.comment"
    } else {
        "pkt_comment"
    }
}

/// Checks a `--version` line: `NAME VERSION (abc1234)`, `(abc1234-dirty)`, or
/// `(unknown)` outside a checkout.
///
/// # Panics
/// When the line has another shape.
pub fn assert_version_line(name: &str, version: &str, output: &str) {
    let line = output.trim();
    let rest = line
        .strip_prefix(&format!("{name} {version} ("))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("unexpected --version: {line:?}"));
    let hash = rest.strip_suffix("-dirty").unwrap_or(rest);
    assert!(
        hash == "unknown" || (hash.len() >= 7 && hash.chars().all(|c| c.is_ascii_hexdigit())),
        "not a commit: {line:?}"
    );
}
