//! Crash consistency: a change is killed at every step (before the journal
//! append, after it, after its fsync, while publishing, and at each step of a
//! compaction), and the restart must give the old state or the new one, the
//! new one whenever a reply was sent.
//!
//! Why a child process rather than fault injection in-process: a crash must
//! stop *everything* at once (no destructor, no buffered write, no other
//! thread finishing its job), which only the death of a process gives. The
//! child is this test binary run again with `--exact helper_crash_child`; it
//! aborts at the step named by `EIP_STATE_CRASH_AT` (see
//! `journal::crash_point`, compiled into test builds only). A power cut, which
//! also loses what was written but not fsynced, is covered by the torn-record
//! tests: every cut of the journal's last record is ignored.

use super::plugins::{SinkError, TableSink};
use super::testkit::{temp_dir, EXAMPLE};
use super::{ControlPlane, StartFrom, StateFile};
use crate::api::{BackendRef, Op, UpdateBackend};
use eip_dataplane::tables::{Protocol, Tables};
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const DIR: &str = "EIP_STATE_CRASH_DIR";
const AT: &str = "EIP_STATE_CRASH_AT";

fn drain(address: &str) -> Op {
    Op::DrainBackend(BackendRef {
        eip: "192.0.2.20".parse().unwrap(),
        protocol: Protocol::Tcp,
        port: 80,
        address: address.parse().unwrap(),
        backend_port: None,
    })
}

/// Aborts in `publish` when asked to: a crash with the change journaled and
/// half handed over.
struct CrashingSink;

impl TableSink for CrashingSink {
    fn publish(&mut self, _: Arc<Tables>, _: Duration) -> Result<(), SinkError> {
        if std::env::var(AT).is_ok_and(|s| s == "publish") {
            std::process::abort();
        }
        Ok(())
    }
}

fn boot(dir: &Path) -> (StateFile, super::Boot) {
    let store = StateFile::new(dir.join("state.json"));
    let boot = store
        .boot_from(&dir.join("pop.toml"), None, StartFrom::State)
        .unwrap();
    (store, boot)
}

/// The child: one change from the state in `EIP_STATE_CRASH_DIR`, its reply
/// recorded in `reply` (fsynced) the moment it arrives. Does nothing when run
/// as an ordinary test.
#[test]
fn helper_crash_child() {
    let Ok(dir) = std::env::var(DIR) else {
        return;
    };
    let dir = Path::new(&dir);
    let (store, boot) = boot(dir);
    let compact =
        std::env::var(AT).is_ok_and(|s| s.starts_with("snapshot") || s.starts_with("rotate"));
    let cp = ControlPlane::new(store, boot, CrashingSink).with_compaction_at(if compact {
        1
    } else {
        u64::MAX
    });
    let reply = cp.apply(&[drain("10.1.0.20")], None, false);
    assert!(reply.ok, "{reply:?}");
    let mut f = fs::File::create(dir.join("reply")).unwrap();
    writeln!(f, "{}", reply.version).unwrap();
    f.sync_all().unwrap();
    cp.wait_for_compaction();
}

/// Every step a change goes through, and whether the restart must show it.
const STEPS: &[(&str, Expect)] = &[
    ("before_append", Expect::Old),
    ("after_append", Expect::New),
    ("after_fsync", Expect::New),
    ("publish", Expect::New),
    ("snapshot_before_rename", Expect::New),
    ("snapshot_after_rename", Expect::New),
    ("rotate_before_rename", Expect::New),
    ("rotate_after_rename", Expect::New),
    ("none", Expect::New),
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Old,
    New,
}

#[test]
fn a_change_killed_at_any_step_restarts_old_or_new_and_replies_only_for_new() {
    let exe = std::env::current_exe().unwrap();
    for &(step, expect) in STEPS {
        let dir = temp_dir(&format!("crash-{step}"));
        fs::write(dir.join("pop.toml"), EXAMPLE).unwrap();
        // A first change, so that the journal has a record before ours.
        let (store, b) = boot(&dir);
        let cp = ControlPlane::new(store, b, CrashingSink);
        assert!(cp.apply(&[drain("10.1.0.21")], None, false).ok);
        let old = cp.snapshot();
        drop(cp);

        let out = Command::new(&exe)
            .args([
                "--exact",
                "state::crash_tests::helper_crash_child",
                "--nocapture",
            ])
            .env(DIR, &dir)
            .env(AT, step)
            .output()
            .unwrap();
        let crashed = !out.status.success();
        assert_eq!(
            crashed,
            step != "none",
            "{step}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let replied = fs::read_to_string(dir.join("reply")).ok();

        let (store, restarted) = boot(&dir);
        let version = restarted.tables.version;
        let weight = restarted.spec.eips.nth(1).unwrap().services[0].backends[0].weight;
        match expect {
            Expect::Old => {
                assert_eq!((version, weight), (old.version(), 1), "{step}");
                assert_eq!(restarted.spec, *old.spec, "{step}");
                assert_eq!(replied, None, "{step}: a reply for a change that is lost");
            }
            Expect::New => {
                assert_eq!((version, weight), (old.version() + 1, 0), "{step}")
            }
        }
        if let Some(v) = replied {
            assert_eq!(v.trim(), (old.version() + 1).to_string(), "{step}");
        }
        // The daemon goes on from there: the next change is kept too.
        let cp = ControlPlane::new(store, restarted, CrashingSink);
        let weight = Op::UpdateBackend(UpdateBackend {
            eip: "192.0.2.20".parse().unwrap(),
            protocol: Protocol::Tcp,
            port: 80,
            address: "10.1.0.21".parse().unwrap(),
            backend_port: None,
            weight: 7,
        });
        let r = cp.apply(&[weight], None, false);
        assert!(r.ok, "{step}: {r:?}");
        let after = cp.version();
        drop(cp);
        assert_eq!(boot(&dir).1.tables.version, after, "{step}");
        let _ = fs::remove_dir_all(&dir);
    }
}
