//! Next-hop MACs from the kernel's neighbour table.
//!
//! A port's `gateway` or a path's `next_hop` may be given as an address instead of
//! a MAC. `eipd run` looks the address up in the kernel's IPv4 neighbour table
//! (`/proc/net/arp`), fills the MAC into the spec before building tables, and keeps
//! looking: when a neighbour's MAC changes (failover of a router pair, a replaced
//! NIC) new tables are built and swapped in. Addresses not yet resolved are
//! solicited by the kernel when we send it one empty UDP datagram toward them
//! (the discard port), which makes it ARP for the next hop.

use eip_dataplane::tables::{MacAddr, PopSpec};
use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};

/// IPv4 address -> MAC, complete entries only.
pub type NeighbourTable = BTreeMap<Ipv4Addr, MacAddr>;

/// Parses `/proc/net/arp` text: keeps entries with the "complete" flag (0x2).
pub fn parse_proc_arp(text: &str) -> NeighbourTable {
    let mut out = NeighbourTable::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 {
            continue;
        }
        let complete = u32::from_str_radix(f[2].trim_start_matches("0x"), 16)
            .is_ok_and(|flags| flags & 0x2 != 0);
        if let (true, Ok(ip), Some(mac)) =
            (complete, f[0].parse::<Ipv4Addr>(), MacAddr::parse(f[3]))
        {
            out.insert(ip, mac);
        }
    }
    out
}

/// Reads the current network namespace's IPv4 neighbour table.
pub fn read_kernel_table() -> io::Result<NeighbourTable> {
    Ok(parse_proc_arp(&std::fs::read_to_string("/proc/net/arp")?))
}

/// The next-hop addresses of a spec whose MACs must come from the table.
pub fn wanted(spec: &PopSpec) -> Vec<Ipv4Addr> {
    let mut v: Vec<Ipv4Addr> = spec
        .ports
        .iter()
        .filter(|p| p.gateway_mac.is_none())
        .filter_map(|p| match p.gateway {
            Some(IpAddr::V4(a)) => Some(a),
            _ => None,
        })
        .chain(
            spec.paths
                .iter()
                .filter(|p| p.next_hop_mac.is_none())
                .filter_map(|p| p.next_hop),
        )
        .collect();
    v.sort();
    v.dedup();
    v
}

/// `spec` with every MAC that is given as an address filled in from `table`.
/// Returns the filled spec and the addresses still unresolved.
pub fn resolve(spec: &PopSpec, table: &NeighbourTable) -> (PopSpec, Vec<Ipv4Addr>) {
    let mut out = spec.clone();
    let mut missing = Vec::new();
    for p in out.ports.iter_mut().filter(|p| p.gateway_mac.is_none()) {
        if let Some(IpAddr::V4(a)) = p.gateway {
            match table.get(&a) {
                Some(mac) => p.gateway_mac = Some(*mac),
                None => missing.push(a),
            }
        }
    }
    for p in out.paths.iter_mut().filter(|p| p.next_hop_mac.is_none()) {
        if let Some(a) = p.next_hop {
            match table.get(&a) {
                Some(mac) => p.next_hop_mac = Some(*mac),
                None => missing.push(a),
            }
        }
    }
    missing.sort();
    missing.dedup();
    (out, missing)
}

/// `spec` resolved from the current kernel table where possible, every other
/// next hop given as an address filled with a placeholder MAC: for checking a
/// configuration offline. Returns the addresses left to `eipd run`.
pub fn resolve_for_check(spec: &PopSpec) -> (PopSpec, Vec<Ipv4Addr>) {
    let table = read_kernel_table().unwrap_or_default();
    let (mut filled, missing) = resolve(spec, &table);
    let placeholder = Some(MacAddr([0; 6]));
    for p in filled
        .ports
        .iter_mut()
        .filter(|p| p.gateway_mac.is_none() && p.gateway.is_some())
    {
        p.gateway_mac = placeholder;
    }
    for p in filled
        .paths
        .iter_mut()
        .filter(|p| p.next_hop_mac.is_none() && p.next_hop.is_some())
    {
        p.next_hop_mac = placeholder;
    }
    (filled, missing)
}

/// Asks the kernel to resolve `addr` by sending it one empty UDP datagram to the
/// discard port (9): the kernel ARPs for the next hop before it can send.
pub fn solicit(addr: Ipv4Addr) -> io::Result<()> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    socket.send_to(&[], (addr, 9)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARP: &str =
        "IP address       HW type     Flags       HW address            Mask     Device
203.0.113.2      0x1         0x2         02:00:00:00:02:10     *        eip-inet
198.51.100.10    0x1         0x6         02:00:00:00:10:20     *        eip-bb0
198.51.100.14    0x1         0x0         00:00:00:00:00:00     *        eip-bb1
";

    #[test]
    fn keeps_complete_entries_only() {
        let t = parse_proc_arp(ARP);
        assert_eq!(t.len(), 2);
        assert_eq!(
            t[&"203.0.113.2".parse().unwrap()],
            MacAddr([2, 0, 0, 0, 2, 0x10])
        );
        assert!(!t.contains_key(&"198.51.100.14".parse().unwrap()));
    }

    #[test]
    fn resolves_addresses_and_reports_the_rest() {
        let text = include_str!("../../../docs/example-pop.toml")
            .replacen(
                "gateway_mac = \"02:00:00:00:00:fe\"",
                "gateway = \"203.0.113.2\"",
                1,
            )
            .replacen(
                "next_hop_mac = \"02:00:00:00:02:06\"",
                "next_hop = \"198.51.100.14\"",
                1,
            );
        let spec = crate::config::parse(&text, std::path::Path::new("t.toml")).unwrap();
        assert_eq!(
            wanted(&spec),
            vec![
                "198.51.100.14".parse::<Ipv4Addr>().unwrap(),
                "203.0.113.2".parse().unwrap()
            ]
        );
        let (filled, missing) = resolve(&spec, &parse_proc_arp(ARP));
        assert_eq!(
            filled.ports[0].gateway_mac,
            Some(MacAddr([2, 0, 0, 0, 2, 0x10]))
        );
        assert_eq!(missing, vec!["198.51.100.14".parse::<Ipv4Addr>().unwrap()]);
        let err = eip_dataplane::Tables::build(&filled, 1)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("198.51.100.14") && err.contains("neighbour"),
            "{err}"
        );
    }
}
