//! The access lists' series: per-rule hits of the EIPs chosen by
//! `--metrics-eips` and the XDP program's early drops.

use super::render::{header, sample};
use super::MetricsSnapshot;

/// `eipd_acl_hits_total`: per EIP with an access list (and series of its
/// own), one sample per rule and the default.
pub(super) fn hits(o: &mut String, s: &MetricsSnapshot) {
    let name = "eipd_acl_hits_total";
    header(
        o,
        name,
        "counter",
        "Packets to an EIP decided by each rule of its access list (rule: index from 0, or default), with the rule's action; since the list last changed.",
    );
    for (eip, h) in s
        .eips
        .iter()
        .flat_map(|e| e.acl.iter().map(move |h| (e, h)))
    {
        let labels = [
            ("eip", &*eip.address),
            ("rule", &h.rule),
            ("action", h.action),
        ];
        sample(o, name, &labels, h.hits);
    }
}

/// `eipd_xdp_acl_dropped_total`, when the daemon has an XDP program.
pub(super) fn xdp_dropped(o: &mut String, s: &MetricsSnapshot) {
    if let Some(dropped) = s.xdp_acl_dropped {
        let name = "eipd_xdp_acl_dropped_total";
        header(
            o,
            name,
            "counter",
            "Frames the XDP program dropped before any worker saw them: sources an EIP's access list denies outright (per-CPU counters, summed).",
        );
        sample(o, name, &[], dropped);
    }
}
