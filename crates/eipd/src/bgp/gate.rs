//! When a prefix may be announced: a pure decision over what the data plane
//! reports ([`gate`]), and the damping of its transitions ([`Damper`]), which
//! takes `now` from the caller. No clock, no I/O: both are tested below.

use eip_dataplane::bgp_spec::Prefix;
use eip_dataplane::tables::{PathState, PopSpec};
use serde::Serialize;
use std::fmt;
use std::time::Duration;

/// What the data plane reports, read by the BGP task each pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// The XDP program is attached and the AF_XDP workers run.
    pub xdp_attached: bool,
    /// The table version the control side published last.
    pub version: u64,
    /// Every worker acknowledged `version`.
    pub workers_current: bool,
    /// The operator asked the POP to drain (SIGTERM, `eipctl drain`).
    pub draining: bool,
}

/// What the prober measured for one path: `Some(true)` up, `Some(false)` down,
/// `None` not probed (yet).
pub type PathHealth<'a> = &'a dyn Fn(&str) -> Option<bool>;

/// Why a prefix is not announced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Closed {
    /// XDP is not attached (yet, or any more).
    XdpDetached,
    /// Some worker still forwards older tables than the published ones.
    WorkersBehind { version: u64 },
    /// No EIP of the tables lies inside the prefix: nothing to attract traffic to.
    NoEip,
    /// A region serving EIPs of the prefix has no path measured up (a
    /// fallback over down paths does not count).
    RegionDown { region: String, paths: usize },
    /// The POP is draining.
    Draining,
    /// Every EIP inside the prefix has all its backends checked and down
    /// (`withdraw_when_backends_down`).
    BackendsDown { eips: usize },
}

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Closed::XdpDetached => f.write_str("XDP is not attached"),
            Closed::WorkersBehind { version } => {
                write!(
                    f,
                    "some worker does not forward table version {version} yet"
                )
            }
            Closed::NoEip => f.write_str("no EIP lies inside the prefix"),
            Closed::RegionDown { region, paths: 0 } => {
                write!(f, "region {region} has no backbone path")
            }
            Closed::RegionDown { region, paths } => write!(
                f,
                "region {region}: none of its {paths} backbone path(s) is measured up"
            ),
            Closed::Draining => f.write_str("the POP is draining"),
            Closed::BackendsDown { eips } => write!(
                f,
                "every backend of the {eips} EIP(s) inside the prefix is checked and down"
            ),
        }
    }
}

/// The gate of one prefix: `Ok` to announce, else why not.
///
/// # Errors
/// The first reason found, in the order of the [`Closed`] variants.
pub fn gate(
    prefix: &Prefix,
    spec: &PopSpec,
    facts: &Facts,
    health: PathHealth<'_>,
) -> Result<(), Closed> {
    if facts.draining {
        return Err(Closed::Draining);
    }
    if !facts.xdp_attached {
        return Err(Closed::XdpDetached);
    }
    if !facts.workers_current {
        return Err(Closed::WorkersBehind {
            version: facts.version,
        });
    }
    let mut regions: Vec<&str> = spec
        .eips
        .addresses_and_regions()
        .filter(|(address, _)| prefix.contains(*address))
        .map(|(_, region)| region.as_str())
        .collect();
    if regions.is_empty() {
        return Err(Closed::NoEip);
    }
    regions.sort_unstable();
    regions.dedup();
    for region in regions {
        let paths: Vec<_> = spec
            .paths
            .iter()
            .filter(|p| p.region == region && p.state != PathState::Disabled)
            .collect();
        if !paths.iter().any(|p| health(&p.name) == Some(true)) {
            return Err(Closed::RegionDown {
                region: region.to_string(),
                paths: paths.len(),
            });
        }
    }
    Ok(())
}

/// The backend part of the gate (`withdraw_when_backends_down`): closed when
/// every EIP inside `prefix` has all its backends checked and down
/// (`eip_down`); an EIP without checks counts as up, so a pool is withdrawn
/// only when nothing in it answers.
///
/// # Errors
/// [`Closed::BackendsDown`] with the number of EIPs in the prefix.
pub fn backends(
    prefix: &Prefix,
    spec: &PopSpec,
    eip_down: &dyn Fn(std::net::IpAddr) -> bool,
) -> Result<(), Closed> {
    let mut eips = 0;
    let addresses = spec.eips.addresses_and_regions().map(|(a, _)| a);
    for address in addresses.filter(|&a| prefix.contains(a)) {
        if !eip_down(address) {
            return Ok(());
        }
        eips += 1;
    }
    if eips == 0 {
        return Ok(());
    }
    Err(Closed::BackendsDown { eips })
}

/// A change to make on the speaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Announce,
    Withdraw,
}

/// Damping of one prefix's gate: a closed gate withdraws after it stayed
/// closed `withdraw_after`; once withdrawn, an open gate announces again after
/// it stayed open `hold_down`. The first announcement waits for nothing.
#[derive(Debug, Clone, Default)]
pub struct Damper {
    announced: bool,
    ever_announced: bool,
    closed_since: Option<Duration>,
    open_since: Option<Duration>,
}

impl Damper {
    pub fn announced(&self) -> bool {
        self.announced
    }

    /// Feeds the gate's state at `now`; returns the transition to make, if any.
    pub fn step(
        &mut self,
        now: Duration,
        open: bool,
        withdraw_after: Duration,
        hold_down: Duration,
    ) -> Option<Transition> {
        if open {
            self.closed_since = None;
            let since = *self.open_since.get_or_insert(now);
            if !self.announced && (!self.ever_announced || now.saturating_sub(since) >= hold_down) {
                self.announced = true;
                self.ever_announced = true;
                return Some(Transition::Announce);
            }
        } else {
            self.open_since = None;
            let since = *self.closed_since.get_or_insert(now);
            if self.announced && now.saturating_sub(since) >= withdraw_after {
                self.announced = false;
                return Some(Transition::Withdraw);
            }
        }
        None
    }

    /// Withdraws at once (drain, shutdown), whatever the damping says.
    pub fn force_withdraw(&mut self) -> Option<Transition> {
        std::mem::replace(&mut self.announced, false).then_some(Transition::Withdraw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eip_dataplane::testkit::pop::{self, PopBuilder};
    use std::net::Ipv4Addr;

    const MS: Duration = Duration::from_millis(1);

    fn facts() -> Facts {
        Facts {
            xdp_attached: true,
            version: 3,
            workers_current: true,
            draining: false,
        }
    }

    /// Beijing (two paths) serves 192.0.2.10, Hebei (one path) 192.0.2.20.
    fn spec() -> PopSpec {
        PopBuilder::new("t")
            .region(pop::region("beijing", pop::VNI, pop::REGION_VTEP))
            .paths("beijing", "backbone", 2, 1550)
            .region(pop::region(
                "hebei",
                pop::VNI + 1,
                Ipv4Addr::new(198, 51, 100, 3),
            ))
            .path(pop::path(
                "hb0",
                "hebei",
                "backbone",
                [2, 0, 0, 0, 9, 9],
                1550,
            ))
            .eip(pop::one_to_one(
                Ipv4Addr::new(192, 0, 2, 10),
                "beijing",
                Ipv4Addr::new(10, 1, 0, 10),
            ))
            .eip(pop::one_to_one(
                Ipv4Addr::new(192, 0, 2, 20),
                "hebei",
                Ipv4Addr::new(10, 2, 0, 20),
            ))
            .spec()
    }

    fn prefix(text: &str) -> Prefix {
        text.parse().unwrap()
    }

    fn all_up(_: &str) -> Option<bool> {
        Some(true)
    }

    #[test]
    fn open_when_forwarding_and_every_region_has_a_path_up() {
        let s = spec();
        let p = prefix("192.0.2.0/24");
        assert!(s.eips.iter().any(|e| p.contains(e.address)), "{s:?}");
        assert_eq!(gate(&p, &s, &facts(), &all_up), Ok(()));
    }

    #[test]
    fn backends_close_a_prefix_only_when_every_eip_in_it_is_down() {
        let s = spec();
        let twenty: std::net::IpAddr = Ipv4Addr::new(192, 0, 2, 20).into();
        let only_twenty = |e: std::net::IpAddr| e == twenty;
        // A /32 of the EIP whose backends are all down: withdrawn.
        assert_eq!(
            backends(&prefix("192.0.2.20/32"), &s, &only_twenty),
            Err(Closed::BackendsDown { eips: 1 })
        );
        // The pool still holds an EIP that answers: announced.
        assert_eq!(backends(&prefix("192.0.2.0/24"), &s, &only_twenty), Ok(()));
        assert_eq!(
            backends(&prefix("192.0.2.0/24"), &s, &|_| true),
            Err(Closed::BackendsDown { eips: 2 })
        );
        // No EIP inside: the other gate's business.
        assert_eq!(backends(&prefix("198.51.100.0/24"), &s, &|_| true), Ok(()));
        assert!(Closed::BackendsDown { eips: 1 }
            .to_string()
            .contains("checked and down"));
    }

    #[test]
    fn each_fact_closes_the_gate_with_its_reason() {
        let s = spec();
        let p = prefix("192.0.2.0/24");
        let f = Facts {
            xdp_attached: false,
            ..facts()
        };
        assert_eq!(gate(&p, &s, &f, &all_up), Err(Closed::XdpDetached));
        let f = Facts {
            workers_current: false,
            ..facts()
        };
        assert_eq!(
            gate(&p, &s, &f, &all_up),
            Err(Closed::WorkersBehind { version: 3 })
        );
        let f = Facts {
            draining: true,
            ..facts()
        };
        assert_eq!(gate(&p, &s, &f, &all_up), Err(Closed::Draining));
        assert_eq!(
            gate(&prefix("198.18.0.0/15"), &s, &facts(), &all_up),
            Err(Closed::NoEip)
        );
    }

    #[test]
    fn a_region_with_all_paths_down_or_unprobed_closes_the_gate() {
        let s = spec();
        let p = prefix("192.0.2.0/24");
        let bj_down = Err(Closed::RegionDown {
            region: "beijing".into(),
            paths: 2,
        });
        assert_eq!(gate(&p, &s, &facts(), &|_| Some(false)), bj_down);
        assert_eq!(gate(&p, &s, &facts(), &|_| None), bj_down);
        // One path up per region is enough.
        let one_each = |name: &str| Some(name == "path1" || name == "hb0");
        assert_eq!(gate(&p, &s, &facts(), &one_each), Ok(()));
        // Every region of the prefix counts: Hebei down closes the /24 ...
        let hebei_down = |name: &str| Some(name != "hb0");
        assert_eq!(
            gate(&p, &s, &facts(), &hebei_down),
            Err(Closed::RegionDown {
                region: "hebei".into(),
                paths: 1
            })
        );
        // ... but not a /32 of Beijing's EIP.
        assert_eq!(
            gate(&prefix("192.0.2.10/32"), &s, &facts(), &hebei_down),
            Ok(())
        );
    }

    #[test]
    fn a_disabled_path_does_not_count_even_if_measured_up() {
        let mut s = spec();
        for path in &mut s.paths {
            path.state = PathState::Disabled;
        }
        let p = prefix("192.0.2.0/24");
        assert!(matches!(
            gate(&p, &s, &facts(), &all_up),
            Err(Closed::RegionDown { paths: 0, .. })
        ));
    }

    #[test]
    fn first_announce_is_immediate_withdraw_is_damped_reannounce_waits_hold_down() {
        let (after, hold) = (50 * MS, 1000 * MS);
        let mut d = Damper::default();
        assert_eq!(d.step(Duration::ZERO, false, after, hold), None);
        assert_eq!(
            d.step(10 * MS, true, after, hold),
            Some(Transition::Announce)
        );
        assert_eq!(d.step(20 * MS, true, after, hold), None);
        // Closed for less than `after`, then open again: nothing happens.
        assert_eq!(d.step(30 * MS, false, after, hold), None);
        assert_eq!(d.step(79 * MS, false, after, hold), None);
        assert_eq!(d.step(80 * MS, true, after, hold), None);
        // Closed for `after`: withdrawn.
        assert_eq!(d.step(100 * MS, false, after, hold), None);
        assert_eq!(
            d.step(150 * MS, false, after, hold),
            Some(Transition::Withdraw)
        );
        assert!(!d.announced());
        // Open again: announced only after `hold` of staying open.
        assert_eq!(d.step(200 * MS, true, after, hold), None);
        assert_eq!(d.step(700 * MS, false, after, hold), None);
        assert_eq!(d.step(800 * MS, true, after, hold), None);
        assert_eq!(d.step(1799 * MS, true, after, hold), None);
        assert_eq!(
            d.step(1800 * MS, true, after, hold),
            Some(Transition::Announce)
        );
    }

    #[test]
    fn zero_damping_withdraws_on_the_first_closed_pass() {
        let mut d = Damper::default();
        assert_eq!(
            d.step(Duration::ZERO, true, Duration::ZERO, MS),
            Some(Transition::Announce)
        );
        assert_eq!(
            d.step(1 * MS, false, Duration::ZERO, MS),
            Some(Transition::Withdraw)
        );
        assert_eq!(d.force_withdraw(), None);
    }

    #[test]
    fn reasons_read_as_sentences() {
        let r = Closed::RegionDown {
            region: "beijing".into(),
            paths: 2,
        };
        assert_eq!(
            r.to_string(),
            "region beijing: none of its 2 backbone path(s) is measured up"
        );
    }
}
