//! `explain` against the example POP (`docs/example-pop.toml`). Each answer is
//! cross-checked with a pipeline run of our own on a packet built, and a
//! result parsed, by `etherparse`: the backend and path `explain` names must be
//! the ones the data plane really writes into the frame.

use super::*;
use crate::api::{Explain, FlowProtocol, FlowVerdict, SizeResult};
use eip_dataplane::tables::{PathState, PopSpec};
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use std::net::{Ipv4Addr, Ipv6Addr};

const EXAMPLE: &str = include_str!("../../../../docs/example-pop.toml");

pub(crate) fn example_spec() -> PopSpec {
    crate::config::parse(EXAMPLE, std::path::Path::new("example-pop.toml")).unwrap()
}

pub(crate) fn example_tables() -> Tables {
    Tables::build(&example_spec(), 1).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tcp(src: &str, sport: u16, dst: &str, dport: u16) -> Explain {
    Explain {
        src_port: Some(sport),
        dst_port: Some(dport),
        ..Explain::new(FlowProtocol::Tcp, ip(src), ip(dst))
    }
}

/// What an independent run says: the inner destination (and port) and the
/// outer destination of the frame the pipeline transmits for a TCP SYN, or
/// `None` if it transmits nothing.
fn reference(
    t: &Tables,
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
) -> Option<(IpAddr, u16, Ipv4Addr, [u8; 6])> {
    let builder = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xfe], [2, 0, 0, 0, 0, 1]);
    let builder = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => builder.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => builder.ipv6(s.octets(), d.octets(), 64),
        _ => unreachable!(),
    };
    let builder = builder.tcp(sport, dport, 7, 1000).syn();
    let mut packet = Vec::new();
    builder.write(&mut packet, &[]).unwrap();
    let mut buf = vec![0u8; 512];
    buf[256..256 + packet.len()].copy_from_slice(&packet);
    let mut frames = [Frame::new(&mut buf, 256, packet.len(), t.internet_port)];
    let mut verdicts = [Verdict::ToKernel];
    Pipeline::default().process(Timestamp(1), t, &mut frames, &mut verdicts);
    let Verdict::Tx(_) = verdicts[0] else {
        return None;
    };
    let out = frames[0].data();
    let outer = SlicedPacket::from_ethernet(out).unwrap();
    let Some(NetSlice::Ipv4(outer_ip)) = &outer.net else {
        return None;
    };
    let Some(TransportSlice::Udp(udp)) = &outer.transport else {
        return None;
    };
    let inner = SlicedPacket::from_ethernet(&udp.payload()[8..]).unwrap();
    let inner_dst = match &inner.net {
        Some(NetSlice::Ipv4(i)) => IpAddr::V4(i.header().destination_addr()),
        Some(NetSlice::Ipv6(i)) => IpAddr::V6(i.header().destination_addr()),
        _ => return None,
    };
    let Some(TransportSlice::Tcp(inner_tcp)) = &inner.transport else {
        return None;
    };
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&out[0..6]);
    Some((
        inner_dst,
        inner_tcp.destination_port(),
        outer_ip.header().destination_addr(),
        mac,
    ))
}

/// `explain` agrees with an independent pipeline run on backend, port, remote
/// VTEP and next hop.
fn agrees(t: &Tables, x: &Explanation) {
    let f = &x.flow;
    let (dst, port, vtep, mac) =
        reference(t, f.src, f.src_port.unwrap(), f.dst, f.dst_port.unwrap()).expect("forwarded");
    let backend = x.backend.unwrap();
    assert_eq!((backend.address, backend.port), (dst, Some(port)), "{x:#?}");
    let tunnel = x.tunnel.as_ref().unwrap();
    assert_eq!(
        (tunnel.remote_vtep, tunnel.next_hop_mac.0),
        (vtep, mac),
        "{x:#?}"
    );
}

#[test]
fn one_to_one_eip() {
    let t = example_tables();
    let x = explain(&t, &tcp("198.51.100.7", 40000, "192.0.2.10", 22)).unwrap();
    assert_eq!(x.verdict, FlowVerdict::Forwarded, "{x:#?}");
    assert!(x.service.is_none());
    assert_eq!(x.eip.as_ref().unwrap().region, "beijing");
    assert_eq!(x.backend.unwrap().address, ip("10.1.0.10"));
    let tunnel = x.tunnel.as_ref().unwrap();
    assert_eq!((tunnel.region.as_str(), tunnel.vni), ("beijing", 100));
    assert_eq!(tunnel.port, "backbone");
    assert!(tunnel.udp_source_port >= 49152);
    assert!(
        x.summary
            .starts_with("forwarded to 10.1.0.10:22 (1:1 backend)"),
        "{}",
        x.summary
    );
    agrees(&t, &x);

    let mtu = x.mtu.as_ref().unwrap();
    assert_eq!((mtu.path_mtu, mtu.largest_inner), (1550, 1500));
    let mss = mtu.mss.unwrap();
    assert_eq!((mss.sent, mss.leaves, mss.clamp), (1460, 1460, 1460));
    assert_eq!(mtu.checks[0].result, SizeResult::Passes);
    assert_eq!((mtu.checks[1].size, mtu.checks[1].dont_frag), (1501, true));
    assert_eq!(mtu.checks[1].result, SizeResult::TooBig { mtu: 1500 });
    assert_eq!(
        mtu.checks[2].result,
        SizeResult::Dropped {
            reason: "too_big".into()
        }
    );

    // Both paths carry some flows; explain names the one each really takes.
    let mut paths = std::collections::BTreeSet::new();
    for sport in 40000..40032 {
        let x = explain(&t, &tcp("198.51.100.7", sport, "192.0.2.10", 22)).unwrap();
        agrees(&t, &x);
        paths.insert(x.tunnel.unwrap().path);
    }
    assert_eq!(paths.len(), 2, "{paths:?}");
}

#[test]
fn service_names_the_maglev_pick() {
    let t = example_tables();
    let mut seen = std::collections::BTreeSet::new();
    for sport in 40000..40064 {
        let x = explain(&t, &tcp("198.51.100.7", sport, "192.0.2.20", 80)).unwrap();
        let s = x.service.as_ref().expect("service tcp/80");
        assert_eq!(
            (s.port, s.pool, s.slots),
            (80, 2, t.services().next().unwrap().maglev.len())
        );
        // The pick is the table's, and the frame carries it.
        let service = &t.services_of(&t.eips.at(1))[0];
        let member = service.backends[s.pick];
        assert_eq!(service.maglev[s.slot] as usize, s.pick);
        let b = x.backend.unwrap();
        assert_eq!((b.address, b.port), (member.address, Some(member.port)));
        assert_eq!(s.weight, member.weight);
        agrees(&t, &x);
        seen.insert((b.address, b.port));
    }
    let both = [(ip("10.1.0.20"), Some(80)), (ip("10.1.0.21"), Some(8080))];
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), both);

    // Another port of the same EIP goes to its 1:1 backend.
    let x = explain(&t, &tcp("198.51.100.7", 40000, "192.0.2.20", 443)).unwrap();
    assert!(x.service.is_none());
    assert_eq!(x.backend.unwrap().address, ip("10.1.0.20"));

    let mut udp = tcp("198.51.100.7", 5353, "192.0.2.20", 53);
    udp.protocol = FlowProtocol::Udp;
    let x = explain(&t, &udp).unwrap();
    assert_eq!(x.service.as_ref().unwrap().protocol, Protocol::Udp);
    assert_eq!(x.backend.unwrap().port, Some(53));
    assert!(x.mtu.as_ref().unwrap().mss.is_none());
}

#[test]
fn ipv6_eip() {
    let t = example_tables();
    let x = explain(&t, &tcp("2001:db8::7", 40000, "2001:db8:e1::10", 443)).unwrap();
    assert_eq!(x.verdict, FlowVerdict::Forwarded, "{x:#?}");
    assert_eq!(x.backend.unwrap().address, ip("fd00:1::10"));
    agrees(&t, &x);
    let mtu = x.mtu.as_ref().unwrap();
    assert_eq!(mtu.largest_inner, 1500);
    let mss = mtu.mss.unwrap();
    assert_eq!((mss.sent, mss.leaves, mss.clamp), (1440, 1440, 1440));
    // No "without DF" check: IPv6 routers never fragment.
    assert_eq!(mtu.checks.len(), 2);
    assert_eq!(mtu.checks[1].result, SizeResult::TooBig { mtu: 1500 });

    let echo = Explain::new(FlowProtocol::Icmp, ip("2001:db8::7"), ip("2001:db8:e1::10"));
    let x = explain(&t, &echo).unwrap();
    assert_eq!(x.verdict, FlowVerdict::Forwarded);
    assert_eq!(x.flow.ident, Some(1));
    assert_eq!(x.backend.unwrap().port, None);
}

#[test]
fn not_an_eip() {
    let t = example_tables();
    let x = explain(&t, &tcp("198.51.100.7", 40000, "198.51.100.1", 179)).unwrap();
    assert_eq!(x.verdict, FlowVerdict::ToKernel);
    assert_eq!(x.summary, "not an EIP: goes to the kernel");
    assert!(x.eip.is_none() && x.tunnel.is_none() && x.mtu.is_none());
    let echo = Explain::new(FlowProtocol::Icmp, ip("198.51.100.7"), ip("192.0.2.99"));
    assert_eq!(explain(&t, &echo).unwrap().verdict, FlowVerdict::ToKernel);
}

#[test]
fn drops_say_why() {
    let mut spec = example_spec();
    for p in &mut spec.paths {
        p.state = PathState::Disabled;
    }
    let t = Tables::build(&spec, 2).unwrap();
    let x = explain(&t, &tcp("198.51.100.7", 40000, "192.0.2.10", 22)).unwrap();
    assert_eq!(x.verdict, FlowVerdict::Dropped);
    assert_eq!(x.drop_reason.as_deref(), Some("no_path"));
    assert_eq!(
        x.summary,
        "dropped (no_path): no usable path to region beijing: sha-bj-telecom, sha-bj-unicom all disabled"
    );
    assert!(reference(&t, ip("198.51.100.7"), 40000, ip("192.0.2.10"), 22).is_none());

    // Every path down: the region panics and uses them anyway.
    let mut spec = example_spec();
    for p in &mut spec.paths {
        p.state = PathState::Down;
    }
    let t = Tables::build(&spec, 3).unwrap();
    let x = explain(&t, &tcp("198.51.100.7", 40000, "192.0.2.10", 22)).unwrap();
    assert_eq!(x.verdict, FlowVerdict::Forwarded);
    let tunnel = x.tunnel.as_ref().unwrap();
    assert!(tunnel.region_panic && tunnel.path_state == PathState::Down);
    assert!(
        x.summary.contains("using one that is down"),
        "{}",
        x.summary
    );

    let mut spec = example_spec();
    spec.eips.nth_mut(1).unwrap().backend = None;
    for b in &mut spec.eips.nth_mut(1).unwrap().services[1].backends {
        b.weight = 0;
    }
    let t = Tables::build(&spec, 4).unwrap();
    let mut dns = tcp("198.51.100.7", 5353, "192.0.2.20", 53);
    dns.protocol = FlowProtocol::Udp;
    let x = explain(&t, &dns).unwrap();
    assert_eq!(x.drop_reason.as_deref(), Some("no_backend"));
    assert!(
        x.summary
            .contains("service udp/53 of EIP 192.0.2.20 is drained"),
        "{}",
        x.summary
    );
    let x = explain(&t, &tcp("198.51.100.7", 40000, "192.0.2.20", 22)).unwrap();
    assert_eq!(
        x.summary,
        "dropped (no_service): EIP 192.0.2.20 has no tcp/22 service and no 1:1 backend"
    );
}

#[test]
fn requested_size_and_mss() {
    let t = example_tables();
    let mut flow = tcp("198.51.100.7", 40000, "192.0.2.10", 22);
    flow.size = Some(1600);
    flow.mss = Some(8960);
    let x = explain(&t, &flow).unwrap();
    let mtu = x.mtu.unwrap();
    let mss = mtu.mss.unwrap();
    assert_eq!((mss.sent, mss.leaves, mss.clamp), (8960, 1460, 1460));
    let last = mtu.checks.last().unwrap();
    assert_eq!(
        (last.size, last.result.clone()),
        (1600, SizeResult::TooBig { mtu: 1500 })
    );
    flow.size = Some(576);
    let x = explain(&t, &flow).unwrap();
    assert_eq!(
        x.mtu.unwrap().checks.last().unwrap().result,
        SizeResult::Passes
    );
}

#[test]
fn nonsense_is_refused() {
    let t = example_tables();
    let e = Explain::new(
        FlowProtocol::Tcp,
        ip("198.51.100.7"),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    );
    assert_eq!(explain(&t, &e).unwrap_err().code, ErrorCode::InvalidValue);
}

#[test]
fn an_access_list_refusal_names_its_rule() {
    let mut spec = example_spec();
    spec.eips.iter_mut().next().unwrap().set_acl(Some(
        toml::from_str(
            r#"default = "deny"
rules = [
  { action = "deny", source = "198.51.100.0/24", protocol = "tcp", ports = "22" },
  { action = "allow", source = "198.51.100.0/24" },
]"#,
        )
        .unwrap(),
    ));
    let t = Tables::build(&spec, 2).unwrap();
    let x = explain(&t, &tcp("198.51.100.7", 40000, "192.0.2.10", 22)).unwrap();
    assert_eq!(x.drop_reason.as_deref(), Some("acl_denied"));
    assert_eq!(
        x.summary,
        "dropped (acl_denied): the access list of EIP 192.0.2.10 denies it: rules[0] (eipctl show acl 192.0.2.10)"
    );
    let x = explain(&t, &tcp("198.51.100.7", 40000, "192.0.2.10", 80)).unwrap();
    assert_eq!(x.verdict, FlowVerdict::Forwarded);
    let x = explain(&t, &tcp("203.0.113.9", 40000, "192.0.2.10", 80)).unwrap();
    assert!(
        x.summary.contains("denies it: its default"),
        "{}",
        x.summary
    );
}
