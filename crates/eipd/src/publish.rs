//! How a new table snapshot is put in force: the control plane's [`TableSink`]
//! hands it to the control thread (which owns the AF_XDP runtime), and that
//! thread inserts the EIPs and VTEPs the new tables add into the XDP filter
//! maps, swaps the workers (and waits for their acknowledgement), then removes
//! those the new tables dropped. Only the difference touches the maps, so
//! neither an added nor a removed EIP is ever passed to the kernel while some
//! worker still (or already) serves it, and an update costs what it changes.
//!
//! The access-list tries (the deny rules XDP applies before the redirect,
//! `eip_dataplane::tables::acl::AclSpec::xdp_denies`) follow the same steps:
//! prefixes the new tables deny are inserted before the swap, those they no
//! longer deny removed after it; a swap that leaves every list alone (the
//! snapshots share them) compares none.
//!
//! So do the rate caps the program polices (an EIP's own inbound caps in
//! `rate_caps`, the POP default in the program's config): those of the new
//! tables are written before the swap, those of EIPs that lost theirs removed
//! after it; a swap that leaves every cap alone compares none.
//!
//! The maps are sized at start (`--max-eips`); the control plane refuses a
//! change beyond that before anything is applied, and the maps refuse a delta
//! that would not fit before inserting any of it.
//!
//! The filter maps are behind [`FilterMaps`], so the order of these steps is
//! tested below without XDP and without root.

use eip_afxdp::{AfXdpRuntime, FilterDelta, FilterSource, SetupError, SyncReport};
use eip_control::state::{SinkError, TableSink};
use eip_dataplane::swap::Publisher;
use eip_dataplane::Tables;
use rustc_hash::FxHashSet;
use std::hash::Hash;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

/// A new snapshot for the control thread to apply, and where to answer.
pub struct SwapRequest {
    pub tables: Arc<Tables>,
    pub timeout: Duration,
    pub reply: mpsc::Sender<Result<(), SinkError>>,
}

/// The control plane's [`TableSink`]: hands snapshots to the control thread and
/// waits for its answer.
pub struct ChannelSink(pub mpsc::Sender<SwapRequest>);

impl TableSink for ChannelSink {
    fn publish(&mut self, tables: Arc<Tables>, timeout: Duration) -> Result<(), SinkError> {
        let (reply, answer) = mpsc::channel();
        self.0
            .send(SwapRequest {
                tables,
                timeout,
                reply,
            })
            .map_err(|_| SinkError::Rejected("the data plane is shutting down".into()))?;
        answer
            .recv_timeout(timeout + Duration::from_secs(1))
            .map_err(|_| SinkError::Rejected("the data plane did not answer".into()))?
    }
}

/// The XDP filter maps: which EIPs and VTEPs are diverted to the workers.
pub trait FilterMaps {
    /// Inserts the delta's `add_*` keys; refuses, before inserting any, keys
    /// that would not fit.
    fn widen(&mut self, delta: &FilterDelta) -> Result<SyncReport, Box<SetupError>>;
    /// Removes the delta's `remove_*` keys.
    fn narrow(&mut self, delta: &FilterDelta) -> Result<SyncReport, Box<SetupError>>;
}

impl FilterMaps for AfXdpRuntime {
    fn widen(&mut self, delta: &FilterDelta) -> Result<SyncReport, Box<SetupError>> {
        self.widen_maps(delta).map_err(Box::new)
    }
    fn narrow(&mut self, delta: &FilterDelta) -> Result<SyncReport, Box<SetupError>> {
        self.narrow_maps(delta).map_err(Box::new)
    }
}

/// What `new` adds to and removes from `old`'s EIPs and VTEPs. Empty at once
/// when both share their tables (an observed change: path health).
///
/// Cost: what differs (the EIP index shards the snapshots do not share are
/// compared, a few after a change; none after an observed one), no syscall.
pub fn filter_delta(old: &Tables, new: &Tables) -> FilterDelta {
    fn diff<K: Copy + Eq + Hash>(
        old: impl Iterator<Item = K>,
        new: impl Iterator<Item = K>,
    ) -> (Vec<K>, Vec<K>) {
        let mut gone: FxHashSet<K> = old.collect();
        let mut added = Vec::new();
        for k in new {
            if !gone.remove(&k) {
                added.push(k);
            }
        }
        (added, gone.into_iter().collect())
    }
    if std::ptr::eq(old, new) {
        return FilterDelta::default();
    }
    let (add_v4, remove_v4) = new.eip_v4_changes(old);
    let (add_v6, remove_v6) = new.eip_v6_changes(old);
    let (add_vteps, remove_vteps) = diff(
        old.local_vteps.iter().copied(),
        new.local_vteps.iter().copied(),
    );
    let (add_acl, remove_acl, reset_acl) = if new.eips.same_acls(&old.eips) {
        (Vec::new(), Vec::new(), Vec::new())
    } else {
        let (add, remove) = diff(old.xdp_acl_denies(), new.xdp_acl_denies());
        // Kept prefixes of an EIP whose list changed count from zero.
        let list = |t: &Tables, eip| t.eip_slot(eip).and_then(|s| t.eips.acl(s)).map(|a| a.id);
        let added: FxHashSet<_> = add.iter().copied().collect();
        let reset = new
            .xdp_acl_denies()
            .filter(|e| !added.contains(e) && list(old, e.0) != list(new, e.0))
            .collect();
        (add, remove, reset)
    };
    let (set_caps, remove_caps) = if new.eips.same_limits(&old.eips) {
        (Vec::new(), Vec::new())
    } else {
        let mut gone: rustc_hash::FxHashMap<_, _> = old.rate_caps().collect();
        let mut set = Vec::new();
        for (eip, caps) in new.rate_caps() {
            if gone.remove(&eip) != Some(caps) {
                set.push((eip, caps));
            }
        }
        (set, gone.into_keys().collect())
    };
    let default_caps = Some(new.default_caps()).filter(|d| *d != old.default_caps());
    FilterDelta {
        reset_acl,
        set_caps,
        remove_caps,
        default_caps,
        add_acl,
        remove_acl,
        add_v4,
        remove_v4,
        add_v6,
        remove_v6,
        add_vteps,
        remove_vteps,
    }
}

/// Puts a new snapshot in force: the new EIPs inserted into the filter maps,
/// workers swapped (and acknowledged), the EIPs gone removed.
pub fn apply_swap(
    filter: &mut impl FilterMaps,
    publisher: &mut Publisher<Tables>,
    tables: &Arc<Tables>,
    timeout: Duration,
) -> Result<(), SinkError> {
    let old = Arc::clone(publisher.latest());
    let delta = filter_delta(&old, tables);
    if !delta.is_empty() {
        filter
            .widen(&delta)
            .map_err(|e| SinkError::Rejected(format!("XDP filter map: {e}")))?;
    }
    let result = TableSink::publish(publisher, Arc::clone(tables), timeout);
    if result.is_err() && publisher.latest().version == old.version {
        // Nothing was handed over: take back what was inserted.
        let back = filter_delta(tables, &old);
        let caps_back = FilterDelta {
            set_caps: back.set_caps,
            default_caps: back.default_caps,
            ..FilterDelta::default()
        };
        let undo = FilterDelta {
            remove_v4: delta.add_v4,
            remove_v6: delta.add_v6,
            remove_vteps: delta.add_vteps,
            remove_acl: delta.add_acl,
            remove_caps: back.remove_caps,
            ..FilterDelta::default()
        };
        if !caps_back.is_empty() {
            if let Err(e) = filter.widen(&caps_back) {
                tracing::error!("XDP rate caps after a refused swap: {e}");
            }
        }
        if let Err(e) = filter.narrow(&undo) {
            tracing::error!("XDP filter map after a refused swap: {e}");
        }
        return result;
    }
    if !delta.is_empty() {
        let gone = FilterDelta {
            remove_v4: delta.remove_v4,
            remove_v6: delta.remove_v6,
            remove_vteps: delta.remove_vteps,
            remove_acl: delta.remove_acl,
            reset_acl: delta.reset_acl,
            remove_caps: delta.remove_caps,
            ..FilterDelta::default()
        };
        if let Err(e) = filter.narrow(&gone) {
            tracing::error!("XDP filter map after swap: {e}");
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use eip_dataplane::swap;
    use eip_dataplane::tables::spec::EipSpec;
    use std::collections::BTreeSet;
    use std::net::Ipv4Addr;

    /// A filter map in memory: what it holds after each call, and how much it
    /// holds at most.
    struct RecordingFilter {
        installed: BTreeSet<Ipv4Addr>,
        states: Vec<BTreeSet<Ipv4Addr>>,
        capacity: usize,
    }

    impl RecordingFilter {
        fn new(installed: &[&str], capacity: usize) -> Self {
            RecordingFilter {
                installed: addrs(installed),
                states: Vec::new(),
                capacity,
            }
        }
    }

    impl FilterMaps for RecordingFilter {
        fn widen(&mut self, delta: &FilterDelta) -> Result<SyncReport, Box<SetupError>> {
            let new: BTreeSet<Ipv4Addr> = delta
                .add_v4
                .iter()
                .filter(|a| !self.installed.contains(a))
                .copied()
                .collect();
            if self.installed.len() + new.len() > self.capacity {
                return Err(Box::new(SetupError::Config("map full".into())));
            }
            self.installed.extend(new);
            self.states.push(self.installed.clone());
            Ok(SyncReport::default())
        }
        fn narrow(&mut self, delta: &FilterDelta) -> Result<SyncReport, Box<SetupError>> {
            for a in &delta.remove_v4 {
                self.installed.remove(a);
            }
            self.states.push(self.installed.clone());
            Ok(SyncReport::default())
        }
    }

    /// The example POP with its EIPs replaced by 1:1 EIPs at `eips`.
    fn tables(version: u64, eips: &[&str]) -> Arc<Tables> {
        listed(version, eips, None)
    }

    /// [`tables`] with the access list `acl` (TOML) on every EIP.
    fn listed(version: u64, eips: &[&str], acl: Option<&str>) -> Arc<Tables> {
        const EXAMPLE: &str = include_str!("../../../docs/example-pop.toml");
        let mut spec = eip_control::config::parse(EXAMPLE, "example-pop.toml".as_ref()).unwrap();
        let template = spec.eips.nth(0).unwrap().into_owned();
        spec.eips = eips
            .iter()
            .map(|a| {
                let address: Ipv4Addr = a.parse().unwrap();
                // 1:1 backends must be distinct: 10.1.0.<last octet>.
                let backend = Ipv4Addr::new(10, 1, 0, address.octets()[3]);
                let mut e = EipSpec::new(
                    address.into(),
                    template.region.clone(),
                    Some(backend.into()),
                );
                e.set_acl(acl.map(|a| toml::from_str(a).unwrap()));
                e
            })
            .collect();
        Arc::new(Tables::build(&spec, version).expect("test tables"))
    }

    fn addrs(list: &[&str]) -> BTreeSet<Ipv4Addr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn filter_is_widened_before_the_swap_and_narrowed_after() {
        let old = tables(1, &["203.0.113.1", "203.0.113.2"]);
        let new = tables(2, &["203.0.113.2", "203.0.113.3"]);
        let (mut publisher, mut subscribers) = swap::channel(Arc::clone(&old), 1);
        let mut worker = subscribers.pop().unwrap();
        // The worker acknowledges from its own thread, as a real one would.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                worker.refresh();
                std::thread::yield_now();
            }
        });
        let mut filter = RecordingFilter::new(&["203.0.113.1", "203.0.113.2"], 3);
        apply_swap(&mut filter, &mut publisher, &new, Duration::from_secs(5)).unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        thread.join().unwrap();
        assert_eq!(
            filter.states,
            vec![
                addrs(&["203.0.113.1", "203.0.113.2", "203.0.113.3"]),
                addrs(&["203.0.113.2", "203.0.113.3"]),
            ]
        );
        // Only the difference was asked for.
        let delta = filter_delta(&old, &new);
        assert_eq!(
            delta.add_v4,
            vec!["203.0.113.3".parse::<Ipv4Addr>().unwrap()]
        );
        assert_eq!(
            delta.remove_v4,
            vec!["203.0.113.1".parse::<Ipv4Addr>().unwrap()]
        );
        assert!(filter_delta(&new, &new).is_empty());
        assert_eq!(publisher.latest().version, 2);
    }

    #[test]
    fn xdp_acl_prefixes_follow_the_lists_by_delta() {
        let key = |eip: &str, p: &str| {
            (
                eip.parse::<std::net::IpAddr>().unwrap(),
                eip_dataplane::protect::Prefix::parse(p).unwrap(),
            )
        };
        let none = tables(1, &["203.0.113.1", "203.0.113.2"]);
        let deny = r#"rules = [{ action = "deny", source = "198.51.100.0/24" }, { action = "deny", source = "192.0.2.0/24", protocol = "udp" }]"#;
        let one = listed(2, &["203.0.113.1", "203.0.113.2"], Some(deny));
        let d = filter_delta(&none, &one);
        let mut added = d.add_acl.clone();
        added.sort_by_key(|(e, _)| *e);
        // The qualified rule stays in user space.
        assert_eq!(
            added,
            [
                key("203.0.113.1", "198.51.100.0/24"),
                key("203.0.113.2", "198.51.100.0/24")
            ]
        );
        assert!(d.remove_acl.is_empty() && d.add_v4.is_empty());
        assert!(d.reset_acl.is_empty(), "new entries start from zero anyway");
        // Another list keeping the prefix: its XDP count restarts.
        let longer = r#"rules = [{ action = "deny", source = "198.51.100.0/24" }, { action = "deny", source = "192.0.2.0/24" }]"#;
        let kept = listed(3, &["203.0.113.1", "203.0.113.2"], Some(longer));
        let d = filter_delta(&one, &kept);
        let mut reset = d.reset_acl.clone();
        reset.sort_by_key(|(e, _)| *e);
        assert_eq!(
            reset,
            [
                key("203.0.113.1", "198.51.100.0/24"),
                key("203.0.113.2", "198.51.100.0/24")
            ]
        );
        assert_eq!(d.add_acl.len(), 2, "the second rule's prefix, per EIP");
        // Shadowed by an earlier allow: no longer dropped in XDP.
        let shadowed = r#"rules = [{ action = "allow", source = "198.51.100.7" }, { action = "deny", source = "198.51.100.0/24" }]"#;
        let two = listed(3, &["203.0.113.1", "203.0.113.2"], Some(shadowed));
        let d = filter_delta(&one, &two);
        assert!(d.add_acl.is_empty());
        assert_eq!(d.remove_acl.len(), 2);
        // The same lists (shared): nothing compared, nothing to do.
        assert!(filter_delta(&two, &two).is_empty());
    }

    #[test]
    fn a_filter_that_cannot_be_widened_leaves_the_old_tables_in_force() {
        let old = tables(1, &["203.0.113.1"]);
        let (mut publisher, _subscribers) = swap::channel(Arc::clone(&old), 1);
        // Room for one more EIP only: the map refuses the two new ones before
        // inserting either, and the old tables stay in force.
        let mut filter = RecordingFilter::new(&["203.0.113.1"], 2);
        let newer = tables(2, &["203.0.113.1", "203.0.113.8", "203.0.113.9"]);
        let err = apply_swap(
            &mut filter,
            &mut publisher,
            &newer,
            Duration::from_millis(50),
        )
        .unwrap_err();
        assert!(err.to_string().contains("XDP filter map"), "{err}");
        assert_eq!(publisher.latest().version, 1);
        assert_eq!(filter.installed, addrs(&["203.0.113.1"]));
        assert!(filter.states.is_empty());
    }
}
