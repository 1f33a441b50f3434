//! How a new table snapshot is put in force: the control plane's [`TableSink`]
//! hands it to the control thread (which owns the AF_XDP runtime), and that
//! thread widens the XDP filter to old + new, swaps the workers (and waits for
//! their acknowledgement), then narrows the filter to the new tables.
//!
//! The filter maps are behind [`FilterMaps`], so the order of these steps is
//! tested below without XDP and without root.

use eip_afxdp::{AfXdpRuntime, FilterSource, SetupError, SyncReport};
use eip_control::state::{SinkError, TableSink};
use eip_dataplane::swap::Publisher;
use eip_dataplane::Tables;
use std::net::{Ipv4Addr, Ipv6Addr};
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
    /// Makes the filter divert exactly the addresses of `source`.
    fn sync<S: FilterSource + ?Sized>(&mut self, source: &S)
        -> Result<SyncReport, Box<SetupError>>;
}

impl FilterMaps for AfXdpRuntime {
    fn sync<S: FilterSource + ?Sized>(
        &mut self,
        source: &S,
    ) -> Result<SyncReport, Box<SetupError>> {
        self.sync_maps(source).map_err(Box::new)
    }
}

/// Every EIP and VTEP of two snapshots: diverted to the workers during a swap, so
/// that neither the EIPs being removed nor those being added are ever passed to
/// the kernel while some worker still (or already) serves them.
pub struct Union<'a>(pub &'a Tables, pub &'a Tables);

impl FilterSource for Union<'_> {
    fn eip_v4(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.0.eip_v4_addresses().chain(self.1.eip_v4_addresses())
    }
    fn eip_v6(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        self.0.eip_v6_addresses().chain(self.1.eip_v6_addresses())
    }
    fn local_vteps(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.0
            .local_vteps
            .iter()
            .chain(&self.1.local_vteps)
            .copied()
    }
}

/// Puts a new snapshot in force: filter maps widened to old + new, workers
/// swapped (and acknowledged), filter maps narrowed to the new tables.
pub fn apply_swap(
    filter: &mut impl FilterMaps,
    publisher: &mut Publisher<Tables>,
    tables: &Arc<Tables>,
    timeout: Duration,
) -> Result<(), SinkError> {
    let old = Arc::clone(publisher.latest());
    filter
        .sync(&Union(&old, tables))
        .map_err(|e| SinkError::Rejected(format!("XDP filter map: {e}")))?;
    let result = TableSink::publish(publisher, Arc::clone(tables), timeout);
    if let Err(e) = filter.sync(&**publisher.latest()) {
        tracing::error!("XDP filter map after swap: {e}");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use eip_dataplane::swap;
    use eip_dataplane::tables::spec::EipSpec;
    use std::collections::BTreeSet;

    /// Records what each sync asked the filter to divert.
    #[derive(Default)]
    struct RecordingFilter {
        syncs: Vec<BTreeSet<Ipv4Addr>>,
        fail: bool,
    }

    impl FilterMaps for RecordingFilter {
        fn sync<S: FilterSource + ?Sized>(
            &mut self,
            source: &S,
        ) -> Result<SyncReport, Box<SetupError>> {
            if self.fail {
                return Err(Box::new(SetupError::Config("map full".into())));
            }
            self.syncs.push(source.eip_v4().collect());
            Ok(SyncReport::default())
        }
    }

    /// The example POP with its EIPs replaced by 1:1 EIPs at `eips`.
    fn tables(version: u64, eips: &[&str]) -> Arc<Tables> {
        const EXAMPLE: &str = include_str!("../../../docs/example-pop.toml");
        let mut spec = eip_control::config::parse(EXAMPLE, "example-pop.toml".as_ref()).unwrap();
        let template = spec.eips[0].clone();
        spec.eips = eips
            .iter()
            .map(|a| {
                let address: Ipv4Addr = a.parse().unwrap();
                // 1:1 backends must be distinct: 10.1.0.<last octet>.
                let backend = Ipv4Addr::new(10, 1, 0, address.octets()[3]);
                EipSpec {
                    address: address.into(),
                    backend: Some(backend.into()),
                    services: Vec::new(),
                    ..template.clone()
                }
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
        let mut filter = RecordingFilter::default();
        apply_swap(&mut filter, &mut publisher, &new, Duration::from_secs(5)).unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        thread.join().unwrap();
        assert_eq!(
            filter.syncs,
            vec![
                addrs(&["203.0.113.1", "203.0.113.2", "203.0.113.3"]),
                addrs(&["203.0.113.2", "203.0.113.3"]),
            ]
        );
        assert_eq!(publisher.latest().version, 2);
    }

    #[test]
    fn a_filter_that_cannot_be_widened_leaves_the_old_tables_in_force() {
        let old = tables(1, &["203.0.113.1"]);
        let new = tables(2, &["203.0.113.9"]);
        let (mut publisher, _subscribers) = swap::channel(Arc::clone(&old), 1);
        let mut filter = RecordingFilter {
            fail: true,
            ..Default::default()
        };
        let err =
            apply_swap(&mut filter, &mut publisher, &new, Duration::from_millis(50)).unwrap_err();
        assert!(err.to_string().contains("XDP filter map"), "{err}");
        assert_eq!(publisher.latest().version, 1);
    }
}
