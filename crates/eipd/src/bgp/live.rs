//! Live changes of `[bgp]`: the task follows the spec in force, and when a
//! reload leaves a different `[bgp]` it renders BIRD's new configuration (each
//! prefix's protocols enabled as they are now), replaces the file atomically
//! and asks BIRD to `configure`. BIRD keeps every protocol whose configuration
//! is the same, so sessions that did not change stay up and prefixes that did
//! not change are neither withdrawn nor announced again; a changed export
//! filter (attributes, prefixes added or removed) re-sends the routes with
//! their attributes now, as UPDATEs without a withdraw.
//!
//! The task's state is kept by prefix and by neighbour address ([`carry`]): a
//! prefix added starts closed and goes through its gate as at start; a prefix
//! removed is withdrawn with its protocols. A section removed as a whole
//! withdraws every prefix; BIRD keeps its sessions until `eipd` restarts
//! ([`target`]). The reload validated the section and had BIRD parse it
//! ([`super::BgpView`]'s check) before committing it; should BIRD still refuse,
//! the previous section stays in force and the task does not try that one again.

use super::bird::Bird;
use super::conf::{self, Mode};
use super::gate::{Closed, Damper};
use super::Runner;
use eip_control::state::BgpDiff;
use eip_dataplane::bgp_spec::{BgpSpec, Prefix};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// One prefix's state in the task, kept by prefix across changes of `[bgp]`.
#[derive(Debug, Clone)]
pub(super) struct PrefixState {
    pub damper: Damper,
    /// What BIRD has enabled (`None`: unknown, after a failed command or
    /// while BIRD is down).
    pub applied: Option<Mode>,
    pub closed: Option<Closed>,
    pub announces: u64,
    pub withdraws: u64,
}

impl PrefixState {
    /// A prefix BIRD has not announced (at start, or added by a reload): its
    /// gate decides as at start.
    pub fn new() -> PrefixState {
        PrefixState {
            damper: Damper::default(),
            applied: Some(Mode::Off),
            closed: None,
            announces: 0,
            withdraws: 0,
        }
    }

    /// Announced (or draining) as far as the task knows.
    pub fn announced(&self) -> bool {
        self.damper.announced() || matches!(self.applied, Some(Mode::Announce | Mode::Drain))
    }
}

/// The states of `new_keys`, in their order: a key of `old_keys` keeps its
/// state (`states` is in the order of `old_keys`), a new one gets `fresh()`.
/// Also returns the keys that went, with their states.
pub(super) fn carry<K: PartialEq + Copy, T>(
    old_keys: &[K],
    states: Vec<T>,
    new_keys: &[K],
    fresh: impl Fn() -> T,
) -> (Vec<T>, Vec<(K, T)>) {
    let mut old: Vec<(K, Option<T>)> = old_keys
        .iter()
        .copied()
        .zip(states.into_iter().map(Some))
        .collect();
    let kept = new_keys
        .iter()
        .map(|k| {
            old.iter_mut()
                .find(|(o, _)| o == k)
                .and_then(|(_, s)| s.take())
                .unwrap_or_else(&fresh)
        })
        .collect();
    let gone = old
        .into_iter()
        .filter_map(|(k, s)| s.map(|s| (k, s)))
        .collect();
    (kept, gone)
}

/// The section the task applies for `section` in force: itself, or, when it
/// was removed, the running one with no prefix (everything withdrawn, the
/// sessions stay until `eipd` restarts).
pub(super) fn target(section: Option<&BgpSpec>, running: &BgpSpec) -> BgpSpec {
    match section {
        Some(s) => s.clone(),
        None => BgpSpec {
            prefixes: Vec::new(),
            ..running.clone()
        },
    }
}

fn prefixes(spec: &BgpSpec) -> Vec<Prefix> {
    spec.prefixes.iter().map(|p| p.prefix).collect()
}

/// Writes `text` to `path` through a temporary file and a rename, so BIRD
/// (or a restart of it) never reads half a configuration.
pub(super) fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl Runner {
    /// Applies the `[bgp]` in force when it differs from the one BIRD runs.
    /// Called every pass: one pointer comparison when the spec did not change.
    pub(super) fn follow(&mut self, bird: Option<&Bird>) {
        let snapshot = self.inputs.control.snapshot();
        if self
            .seen
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, &snapshot.spec))
        {
            return;
        }
        self.seen = Some(Arc::clone(&snapshot.spec));
        if self.shared.drain.load(Ordering::Relaxed) {
            return; // the daemon stops: nothing more to announce
        }
        let target = target(snapshot.spec.bgp.as_ref(), &self.spec);
        let pop = snapshot.spec.pop.name.clone();
        drop(snapshot);
        if target == self.spec || self.refused.as_ref() == Some(&target) {
            return;
        }
        let diff = BgpDiff::between(Some(&self.spec), Some(&target));
        let (states, removed) = carry(
            &prefixes(&self.spec),
            self.prefixes.clone(),
            &prefixes(&target),
            PrefixState::new,
        );
        let new_keys = prefixes(&target);
        let mode = |p: &Prefix| {
            new_keys
                .iter()
                .position(|k| k == p)
                .and_then(|i| states[i].applied)
                .unwrap_or(Mode::Off)
        };
        let text = conf::render(&target, &pop, &mode);
        let applied = write_atomically(&self.conf, &text)
            .map_err(|e| format!("writing {}: {e}", self.conf.display()))
            .and_then(|()| match bird {
                Some(b) => b.configure(&self.conf).map_err(|e| e.to_string()),
                None => Ok("BIRD is not running: it starts with it".to_string()),
            });
        let answer = match applied {
            Ok(answer) => answer,
            Err(e) => {
                tracing::error!(
                    "bgp: the new [bgp] ({diff}) is not applied: {e}; the previous one stays in force"
                );
                self.reconfigurations_refused += 1;
                self.refused = Some(target);
                let old = conf::render(&self.spec, &pop, &|p| self.mode_of(p));
                if let Err(e) = write_atomically(&self.conf, &old) {
                    tracing::error!("bgp: writing {}: {e}", self.conf.display());
                }
                return;
            }
        };
        tracing::info!("bgp: applied {diff} (BIRD: {answer})");
        for (prefix, state) in removed {
            if state.announced() {
                self.withdraws += 1;
                tracing::warn!("bgp: {prefix}: withdraw: removed from [bgp]");
            }
        }
        let addresses = |s: &BgpSpec| s.neighbors.iter().map(|n| n.address).collect::<Vec<_>>();
        let (sessions, _) = carry(
            &addresses(&self.spec),
            std::mem::take(&mut self.sessions),
            &addresses(&target),
            || None,
        );
        if target.bird != self.spec.bird {
            tracing::warn!(
                "bgp: bgp.bird is now {:?}: used when BIRD next starts",
                target.bird
            );
        }
        self.sessions = sessions;
        self.prefixes = states;
        self.shared
            .drain_wait_ms
            .store(target.drain_wait_ms, Ordering::Relaxed);
        self.spec = target;
        self.refused = None;
        self.reconfigurations += 1;
    }

    /// What BIRD has enabled for `prefix` of the section in force (`Off` when
    /// unknown).
    pub(super) fn mode_of(&self, prefix: &Prefix) -> Mode {
        self.spec
            .prefixes
            .iter()
            .position(|p| p.prefix == *prefix)
            .and_then(|i| self.prefixes[i].applied)
            .unwrap_or(Mode::Off)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(prefixes: &[&str]) -> BgpSpec {
        let list: Vec<String> = prefixes
            .iter()
            .map(|p| format!("{{ prefix = \"{p}\" }}"))
            .collect();
        toml::from_str(&format!(
            "local_as = 64497\nrouter_id = \"203.0.113.10\"\n\
             neighbors = [{{ address = \"203.0.113.9\", remote_as = 64496 }}]\n\
             prefixes = [{}]\n",
            list.join(", ")
        ))
        .unwrap()
    }

    fn announced(times: u64) -> PrefixState {
        let mut s = PrefixState::new();
        let zero = std::time::Duration::ZERO;
        s.damper.step(zero, true, zero, zero);
        s.applied = Some(Mode::Announce);
        s.announces = times;
        s
    }

    #[test]
    fn state_follows_the_prefix_not_its_index() {
        let old = spec(&["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"]);
        let states = vec![announced(1), announced(2), PrefixState::new()];
        // The first goes, one comes between the others, the order changes.
        let new = spec(&["203.0.113.0/24", "192.0.2.10/32", "198.51.100.0/24"]);
        let (kept, gone) = carry(&prefixes(&old), states, &prefixes(&new), PrefixState::new);
        assert_eq!(kept.len(), 3);
        assert!(!kept[0].announced() && kept[0].applied == Some(Mode::Off));
        // The new one starts closed and has announced nothing.
        assert!(!kept[1].announced() && kept[1].announces == 0);
        assert!(kept[2].announced() && kept[2].announces == 2);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].0, "192.0.2.0/24".parse().unwrap());
        assert!(gone[0].1.announced() && gone[0].1.announces == 1);
    }

    #[test]
    fn nothing_changes_nothing_moves() {
        let old = spec(&["192.0.2.0/24", "2001:db8:e1::/48"]);
        let (kept, gone) = carry(
            &prefixes(&old),
            vec![announced(3), announced(4)],
            &prefixes(&old),
            PrefixState::new,
        );
        assert!(gone.is_empty());
        assert_eq!(
            kept.iter().map(|s| s.announces).collect::<Vec<_>>(),
            vec![3, 4]
        );
    }

    #[test]
    fn a_removed_section_withdraws_every_prefix_and_keeps_the_sessions() {
        let running = spec(&["192.0.2.0/24"]);
        let t = target(None, &running);
        assert!(t.prefixes.is_empty());
        assert_eq!(t.neighbors, running.neighbors);
        let other = spec(&["198.51.100.0/24"]);
        assert_eq!(target(Some(&other), &running), other);
        // Rendered, nothing is announced any more and the session is still there.
        let c = conf::render(&t, "pop-a", &|_| Mode::Announce);
        assert!(!c.contains("protocol static"));
        assert!(c.contains("protocol bgp eip_n_203_0_113_9"));
    }

    #[test]
    fn the_file_is_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("eipd-bgp-live-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.bird.conf");
        write_atomically(&path, "one").unwrap();
        write_atomically(&path, "two").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        assert!(!dir.join("x.bird.conf.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
