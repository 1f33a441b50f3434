//! `eipctl explain` against a running server: its answers agree with a pipeline
//! run of our own over the tables in force (packets built and read by
//! `etherparse`), its text says what an operator needs, and it follows changes.

mod common;

use common::*;
use eip_control::api::{Explanation, FlowVerdict};
use eip_dataplane::{Frame, Pipeline, Timestamp, Verdict};
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use std::net::{IpAddr, Ipv4Addr};

fn explain(socket: &Path, args: &[&str]) -> (Explanation, u64) {
    let mut all = vec!["--json", "explain"];
    all.extend_from_slice(args);
    let (code, out, err) = eipctl(socket, &all);
    assert_eq!(code, 0, "{args:?}: {err}");
    let reply: Reply = serde_json::from_str(out.trim()).unwrap();
    match reply.data {
        Some(Data::Explain { explain }) => (*explain, reply.version),
        other => panic!("{other:?}"),
    }
}

fn text(socket: &Path, args: &[&str]) -> String {
    let mut all = vec!["explain"];
    all.extend_from_slice(args);
    let (code, out, err) = eipctl(socket, &all);
    assert_eq!(code, 0, "{args:?}: {err}");
    // Shown with --nocapture: the samples of the documentation.
    println!("$ eipctl {}\n{out}", all.join(" "));
    out
}

/// A TCP SYN of the flow through a pipeline of our own: the inner destination
/// address and port and the outer destination, if it was tunnelled.
fn reference(
    tables: &Tables,
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
) -> Option<(IpAddr, u16, Ipv4Addr)> {
    let builder = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xfe], [2, 0, 0, 0, 0, 1]);
    let builder = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => builder.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => builder.ipv6(s.octets(), d.octets(), 64),
        _ => unreachable!(),
    };
    let mut packet = Vec::new();
    builder
        .tcp(sport, dport, 1, 1000)
        .syn()
        .write(&mut packet, &[])
        .unwrap();
    let mut buf = vec![0u8; 512];
    buf[256..256 + packet.len()].copy_from_slice(&packet);
    let mut frames = [Frame::new(
        &mut buf,
        256,
        packet.len(),
        tables.internet_port,
    )];
    let mut verdicts = [Verdict::ToKernel];
    Pipeline::default().process(Timestamp(1), tables, &mut frames, &mut verdicts);
    if !matches!(verdicts[0], Verdict::Tx(_)) {
        return None;
    }
    let outer = SlicedPacket::from_ethernet(frames[0].data()).unwrap();
    let (Some(NetSlice::Ipv4(outer_ip)), Some(TransportSlice::Udp(udp))) =
        (&outer.net, &outer.transport)
    else {
        return None;
    };
    let inner = SlicedPacket::from_ethernet(&udp.payload()[8..]).unwrap();
    let dst = match &inner.net {
        Some(NetSlice::Ipv4(i)) => IpAddr::V4(i.header().destination_addr()),
        Some(NetSlice::Ipv6(i)) => IpAddr::V6(i.header().destination_addr()),
        _ => return None,
    };
    let Some(TransportSlice::Tcp(tcp)) = &inner.transport else {
        return None;
    };
    Some((
        dst,
        tcp.destination_port(),
        outer_ip.header().destination_addr(),
    ))
}

#[test]
fn explain_agrees_with_the_pipeline() {
    let rig = rig("explain", ServerConfig::default());
    let s = &rig.socket;
    let tables = Arc::clone(&rig.control.snapshot().tables);

    let client = "198.51.100.7".parse().unwrap();
    let client6: IpAddr = "2001:db8::7".parse().unwrap();
    let mut backends = std::collections::BTreeSet::new();
    for sport in 40000..40016u16 {
        for (src, dst, dport, dst_arg) in [
            (client, "192.0.2.10", 22, "192.0.2.10:22".to_string()),
            (client, "192.0.2.20", 80, "192.0.2.20:80".to_string()),
            (
                client6,
                "2001:db8:e1::10",
                443,
                "[2001:db8:e1::10]:443".to_string(),
            ),
        ] {
            let src_arg = match src {
                IpAddr::V4(a) => format!("{a}:{sport}"),
                IpAddr::V6(a) => format!("[{a}]:{sport}"),
            };
            let (x, version) = explain(s, &["tcp", &src_arg, &dst_arg]);
            assert_eq!(version, 1);
            assert_eq!(x.verdict, FlowVerdict::Forwarded, "{x:#?}");
            let (inner, port, vtep) =
                reference(&tables, src, sport, dst.parse().unwrap(), dport).unwrap();
            let backend = x.backend.unwrap();
            assert_eq!((backend.address, backend.port), (inner, Some(port)));
            assert_eq!(x.tunnel.as_ref().unwrap().remote_vtep, vtep);
            backends.insert((backend.address, backend.port));
        }
    }
    // 10.1.0.10, fd00:1::10, and both members of the tcp/80 pool.
    assert_eq!(backends.len(), 4, "{backends:?}");

    // The text, for a 1:1 EIP, a service, an IPv6 EIP and an address that is none.
    let out = text(s, &["tcp", "198.51.100.7:40000", "192.0.2.10:22"]);
    assert!(
        out.starts_with(
            "tcp 198.51.100.7:40000 -> 192.0.2.10:22 (SYN, MSS 1460), table version 1\n"
        ),
        "{out}"
    );
    for line in [
        "  verdict   forwarded to 10.1.0.10:22 (1:1 backend) in region beijing over path sha-bj-",
        "  eip       192.0.2.10, region beijing, 1:1 backend 10.1.0.10\n",
        "  region    beijing, VNI 100\n",
        "  mtu       path MTU 1550: inner packets up to 1500 bytes pass\n",
        "  mss       SYN MSS 1460 leaves unchanged (a larger MSS is clamped to 1460)\n",
        "  size      1501 bytes, DF: ICMP too big sent back (MTU 1500)\n",
        "  size      1501 bytes, no DF: dropped (too_big): the POP does not fragment\n",
    ] {
        assert!(out.contains(line), "{line:?} in\n{out}");
    }
    let out = text(s, &["tcp", "198.51.100.7:40000", "192.0.2.20:80"]);
    assert!(out.contains("  service   tcp/80: Maglev slot "), "{out}");
    let out = text(
        s,
        &[
            "udp",
            "198.51.100.7:5353",
            "192.0.2.20:53",
            "--size",
            "1400",
        ],
    );
    assert!(out.contains("  service   udp/53: Maglev slot "), "{out}");
    assert!(
        out.contains("  size      1400 bytes, DF: passes\n"),
        "{out}"
    );
    let out = text(s, &["tcp", "[2001:db8::7]:40000", "[2001:db8:e1::10]:443"]);
    assert!(out.contains("  backend   [fd00:1::10]:443\n"), "{out}");
    assert!(out.contains("(a larger MSS is clamped to 1440)"), "{out}");
    let out = text(s, &["icmp", "2001:db8::7", "2001:db8:e1::10"]);
    assert!(
        out.starts_with(
            "icmp echo 2001:db8::7 -> 2001:db8:e1::10, identifier 1, table version 1\n"
        ),
        "{out}"
    );
    let out = text(s, &["tcp", "198.51.100.7:40000", "198.51.100.1:179"]);
    assert_eq!(
        out,
        "tcp 198.51.100.7:40000 -> 198.51.100.1:179 (SYN, MSS 1460), table version 1\n  verdict   not an EIP: goes to the kernel\n"
    );

    // It answers from the tables in force: with every path disabled, no path
    // (which blackholes the region: said so explicitly).
    for path in ["sha-bj-telecom", "sha-bj-unicom"] {
        let (code, _, err) = eipctl(s, &["--blackhole-ok", "set-path-admin", path, "disabled"]);
        assert_eq!(code, 0, "{err}");
    }
    let (code, out, _) = eipctl(s, &["ex", "icmp", "198.51.100.7", "192.0.2.10"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("  verdict   dropped (no_path): no usable path to region beijing"),
        "{out}"
    );
    let (x, version) = explain(s, &["tcp", "198.51.100.7:1", "192.0.2.10:22"]);
    assert_eq!((x.drop_reason.as_deref(), version), (Some("no_path"), 3));
    let tables = Arc::clone(&rig.control.snapshot().tables);
    assert!(reference(&tables, client, 1, "192.0.2.10".parse().unwrap(), 22).is_none());

    // A flow that makes no sense is bad input, caught before it is sent.
    let (code, _, err) = eipctl(s, &["explain", "tcp", "198.51.100.7", "192.0.2.20"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("a tcp flow needs a destination port (invalid_value)"),
        "{err}"
    );
    let (code, _, err) = eipctl(s, &["explain", "icmp", "198.51.100.7:1", "192.0.2.20"]);
    assert_eq!(code, 2);
    assert!(err.contains("ICMP has no ports"), "{err}");
    // The daemon checks it as well.
    let (code, out, _) = eipctl(
        s,
        &[
            "raw",
            r#"{"cmd":"explain","protocol":"udp","src":"198.51.100.7","dst":"2001:db8::1","dst_port":1}"#,
        ],
    );
    assert_eq!(code, 1);
    assert!(out.contains("not of the same address family"), "{out}");
}
