//! The checker driven with a fake clock: frames it sends are answered (or not)
//! by etherparse-built segments, as the region's backends would.
//!
//! Why one file: every case drives the same fake backends and clock.

use super::*;
use eip_dataplane::check_spec::{CheckKind, CheckSpec};
use eip_dataplane::tables::spec::*;
use eip_dataplane::tables::ENCAP_LEN;
use eip_dataplane::testkit::pop::{
    backbone_port, backend, internet_port, path, region, service, service_eip, PopBuilder,
};
use eip_dataplane::{Frame, Pipeline, Timestamp, Verdict};
use etherparse::{PacketBuilder, PacketHeaders, TransportHeader};
use std::net::Ipv4Addr;

const SOURCE: [u8; 4] = [10, 255, 0, 1];
const POP_VTEP: [u8; 4] = [198, 51, 100, 1];
const REGION_VTEP: [u8; 4] = [198, 51, 100, 2];
const BB_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x20];
const NEXT_HOP: [u8; 6] = [2, 0, 0, 0, 0x10, 0x20];
const EIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 20);
const A: [u8; 4] = [10, 1, 0, 20];
const B: [u8; 4] = [10, 1, 0, 21];
const NONCE: u64 = 0x0123_4567_89ab_cdef;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Interval 10 ms, timeout 30 ms, down after 3, up after 2.
fn check(kind: CheckKind) -> CheckSpec {
    CheckSpec {
        interval_ms: 10,
        timeout_ms: 30,
        down_after: 3,
        up_after: 2,
        ..CheckSpec::new(kind)
    }
}

/// EIP 192.0.2.20 tcp/80 over backends A and B, checked with `kind`.
fn spec(kind: CheckKind) -> PopSpec {
    let mut svc = service(
        Protocol::Tcp,
        80,
        [
            backend(Ipv4Addr::from(A), None, 1),
            backend(Ipv4Addr::from(B), None, 1),
        ],
    );
    svc.check = Some(check(kind));
    PopBuilder::new("test")
        .probe_source(Ipv4Addr::from(SOURCE))
        .ports([
            internet_port([2, 0, 0, 0, 1, 0x10], [2, 0, 0, 0, 2, 0x10]),
            backbone_port("backbone0", BB_MAC),
        ])
        .region(region("beijing", 100, Ipv4Addr::from(REGION_VTEP)))
        .path(path("bb0", "beijing", "backbone0", NEXT_HOP, 1550))
        .eip(service_eip(EIP, "beijing", [svc]))
        .spec()
}

fn checker(spec: &PopSpec) -> (BackendChecker, Tables) {
    let t = Tables::build(spec, 1).unwrap();
    let mut c = BackendChecker::new(NONCE);
    c.update(spec, &t, ms(0));
    (c, t)
}

fn poll(c: &mut BackendChecker, t: &Tables, now: Duration) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    c.poll(now, t, |_, f| {
        out.push(f.to_vec());
        Ok::<(), ()>(())
    })
    .unwrap();
    out
}

/// The backend's TCP answer to a SYN, in VXLAN from the region, by etherparse.
fn answer(syn: &[u8], accept: bool) -> Vec<u8> {
    let h = PacketHeaders::from_ethernet_slice(&syn[ENCAP_LEN - 14..]).unwrap();
    let Some(TransportHeader::Tcp(tcp)) = &h.transport else {
        panic!("not TCP")
    };
    assert!(tcp.syn && !tcp.ack);
    let Some(etherparse::NetHeaders::Ipv4(ip, _)) = &h.net else {
        panic!("not IPv4")
    };
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0x10, 1], [2, 0, 0, 0, 1, 1])
        .ipv4(ip.destination, ip.source, 64)
        .tcp(tcp.destination_port, tcp.source_port, 777, 1000);
    let b = if accept { b.syn() } else { b.rst() };
    let b = b.ack(tcp.sequence_number.wrapping_add(1));
    let mut vxlan = vec![0x08, 0, 0, 0, 0, 0, 100, 0];
    b.write(&mut vxlan, &[]).unwrap();
    let outer = PacketBuilder::ethernet2(NEXT_HOP, BB_MAC)
        .ipv4(REGION_VTEP, POP_VTEP, 64)
        .udp(50_000, 4789);
    let mut out = Vec::new();
    outer.write(&mut out, &vxlan).unwrap();
    out
}

fn target(frame: &[u8]) -> [u8; 4] {
    frame[ENCAP_LEN + 16..ENCAP_LEN + 20].try_into().unwrap()
}

fn is_rst(frame: &[u8]) -> bool {
    frame[ENCAP_LEN + 20 + 13] == 0x04
}

/// Runs every 10 ms from `from` to `to`: polls, answers with `respond`, ticks.
fn run(
    c: &mut BackendChecker,
    t: &Tables,
    from: u64,
    to: u64,
    respond: impl Fn([u8; 4]) -> Option<bool>,
) -> Vec<Vec<u8>> {
    let mut sent = Vec::new();
    for now in (from..to).step_by(5) {
        for f in poll(c, t, ms(now)) {
            if !is_rst(&f) {
                if let Some(accept) = respond(target(&f)) {
                    assert!(c.on_frame(ms(now + 1), &answer(&f, accept)));
                }
            }
            sent.push(f);
        }
        c.tick(ms(now + 1));
    }
    sent
}

#[test]
fn a_silent_backend_goes_down_after_down_after_losses_and_comes_back() {
    let s = spec(CheckKind::Tcp);
    let (mut c, t) = checker(&s);
    assert_eq!(c.len(), 2);
    // Both answer: both stay up, each SYN-ACK is closed with a RST.
    let sent = run(&mut c, &t, 0, 100, |_| Some(true));
    let rsts = sent.iter().filter(|f| is_rst(f)).count();
    assert!(rsts >= 16, "{rsts} RSTs {:?}", c.counters());
    assert!(
        c.service_health().iter().all(|(_, up)| *up),
        "{:?} {:?}",
        c.pop_event(),
        c.counters()
    );
    assert!(c.pop_event().is_none());
    // B goes silent at 100 ms: down by the third lost check's timeout.
    run(&mut c, &t, 100, 200, |a| (a == A).then_some(true));
    let health = c.service_health();
    assert_eq!(
        health
            .iter()
            .map(|(r, up)| (r.backend, *up))
            .collect::<Vec<_>>(),
        vec![
            (Ipv4Addr::from(A).into(), true),
            (Ipv4Addr::from(B).into(), false)
        ]
    );
    let event = c.pop_event().unwrap();
    assert!(event.to_string().contains("10.1.0.21:80"), "{event}");
    assert!(
        event.to_string().contains("3 consecutive probes lost"),
        "{event}"
    );
    // Declared down within down_after * interval + timeout of the failure.
    let at = event.transition.at;
    assert!(at <= ms(100 + 3 * 10 + 30 + 5), "{at:?}");
    assert!(c.eips_down().is_empty());
    // B answers again: up once up_after replies came in a row and the loss
    // window is below down_loss again (damping, as for paths).
    run(&mut c, &t, 200, 400, |_| Some(true));
    assert!(c.service_health().iter().all(|(_, up)| *up));
    let up = c.pop_event().unwrap().to_string();
    assert!(up.contains("down -> up"), "{up}");
}

#[test]
fn refusals_count_at_once_and_all_down_marks_the_eip() {
    let s = spec(CheckKind::Tcp);
    let (mut c, t) = checker(&s);
    run(&mut c, &t, 0, 60, |_| Some(false));
    assert!(c.service_health().iter().all(|(_, up)| !*up));
    assert!(c.counters().refused >= 6);
    assert_eq!(c.eips_down(), HashSet::from([IpAddr::from(EIP)]));
    // Refused checks leave nothing half-open: no RST sent.
    assert_eq!(c.counters().rsts_sent, 0);
}

#[test]
fn answers_of_others_are_not_counted() {
    let s = spec(CheckKind::Tcp);
    let (mut c, t) = checker(&s);
    let frames = poll(&mut c, &t, ms(10));
    let syn = &frames[0];
    // Another process (nonce) or a forged answer: lands on no check.
    let mut other = BackendChecker::new(NONCE ^ 0xffff_0000);
    other.update(&s, &t, ms(0));
    let foreign = poll(&mut other, &t, ms(10));
    assert!(c.on_frame(ms(11), &answer(&foreign[0], true)));
    let k = c.counters();
    assert_eq!(k.answers, 0);
    assert_eq!(k.ignored_unknown + k.ignored_wrong_nonce, 1);
    assert!(c.on_frame(ms(11), &answer(syn, true)));
    assert_eq!(c.counters().answers, 1);
}

#[test]
fn icmp_checks_use_the_upper_identifiers_and_leave_path_replies_alone() {
    let s = spec(CheckKind::Icmp);
    let (mut c, t) = checker(&s);
    let frames = poll(&mut c, &t, ms(10));
    assert_eq!(frames.len(), 2);
    for f in &frames {
        let h = PacketHeaders::from_ethernet_slice(&f[ENCAP_LEN - 14..]).unwrap();
        let Some(TransportHeader::Icmpv4(icmp)) = &h.transport else {
            panic!("not ICMP")
        };
        let etherparse::Icmpv4Type::EchoRequest(echo) = icmp.icmp_type else {
            panic!("not an echo request")
        };
        assert!(echo.id >= 0x8000);
        // The region answers: an echo reply with the same data.
        let reply = PacketBuilder::ethernet2([2, 0, 0, 0, 0x10, 1], [2, 0, 0, 0, 1, 1])
            .ipv4(target(f), SOURCE, 64)
            .icmpv4_echo_reply(echo.id, echo.seq);
        let mut vxlan = vec![0x08, 0, 0, 0, 0, 0, 100, 0];
        reply.write(&mut vxlan, h.payload.slice()).unwrap();
        let outer = PacketBuilder::ethernet2(NEXT_HOP, BB_MAC)
            .ipv4(REGION_VTEP, POP_VTEP, 64)
            .udp(50_000, 4789);
        let mut frame = Vec::new();
        outer.write(&mut frame, &vxlan).unwrap();
        assert!(c.on_frame(ms(11), &frame));
        // An echo reply with a path probe's identifier is the prober's.
        let path = PacketBuilder::ethernet2([2, 0, 0, 0, 0x10, 1], [2, 0, 0, 0, 1, 1])
            .ipv4(target(f), SOURCE, 64)
            .icmpv4_echo_reply(1, 0);
        let mut vxlan = vec![0x08, 0, 0, 0, 0, 0, 100, 0];
        path.write(&mut vxlan, &[0; 16]).unwrap();
        let mut frame = Vec::new();
        PacketBuilder::ethernet2(NEXT_HOP, BB_MAC)
            .ipv4(REGION_VTEP, POP_VTEP, 64)
            .udp(50_000, 4789)
            .write(&mut frame, &vxlan)
            .unwrap();
        assert!(!c.on_frame(ms(11), &frame));
    }
    assert_eq!(c.counters().answers, 2);
}

/// The production pipeline hands a backend's SYN-ACK to the probe source to
/// the control thread, and the checker's SYN is what the pipeline would send
/// for the same flow over the same path.
#[test]
fn the_pipeline_hands_tcp_answers_to_the_control_thread() {
    let s = spec(CheckKind::Tcp);
    let (mut c, t) = checker(&s);
    let frames = poll(&mut c, &t, ms(10));
    let input = answer(&frames[0], true);
    let mut buf = vec![0u8; 2048];
    buf[256..256 + input.len()].copy_from_slice(&input);
    let mut f = [Frame::new(&mut buf, 256, input.len(), 1)];
    let mut v = [Verdict::ToKernel];
    Pipeline::default().process(Timestamp(1), &t, &mut f, &mut v);
    assert_eq!(v[0], Verdict::ToControl);
}

#[test]
fn a_check_none_or_an_ipv6_backend_is_not_checked() {
    let mut s = spec(CheckKind::None);
    let (c, _) = checker(&s);
    assert!(c.is_empty());
    assert!(c.eips_down().is_empty());
    // The POP default applies where the service names none.
    s.eips.nth_mut(0).unwrap().services[0].check = None;
    s.pop.backend_check = Some(check(CheckKind::Icmp));
    let (c, _) = checker(&s);
    assert_eq!(c.len(), 2);
}

/// Interval 10 ms, timeout 30 ms, down after 3, up after 2, `GET /healthz`.
fn http_spec() -> PopSpec {
    let mut s = spec(CheckKind::Http);
    s.eips.nth_mut(0).unwrap().services[0]
        .check
        .as_mut()
        .unwrap()
        .path = Some("/healthz".into());
    s
}

/// The inner TCP segment of a frame the checker sent.
fn sent_tcp(frame: &[u8]) -> (etherparse::TcpHeader, Vec<u8>) {
    let h = PacketHeaders::from_ethernet_slice(&frame[ENCAP_LEN - 14..]).unwrap();
    let Some(TransportHeader::Tcp(tcp)) = &h.transport else {
        panic!("not TCP")
    };
    let Some(etherparse::NetHeaders::Ipv4(ip, _)) = &h.net else {
        panic!("not IPv4")
    };
    assert_eq!(
        tcp.checksum,
        tcp.calc_checksum_ipv4(ip, h.payload.slice()).unwrap()
    );
    (tcp.clone(), h.payload.slice().to_vec())
}

/// A segment from backend `from` to the probe source, in VXLAN.
fn from_backend(
    from: [u8; 4],
    to: &etherparse::TcpHeader,
    seq: u32,
    flags: &str,
    ack: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0x10, 1], [2, 0, 0, 0, 1, 1])
        .ipv4(from, SOURCE, 64)
        .tcp(to.destination_port, to.source_port, seq, 1000);
    for f in flags.chars() {
        b = match f {
            'S' => b.syn(),
            'R' => b.rst(),
            'P' => b.psh(),
            'F' => b.fin(),
            _ => unreachable!(),
        };
    }
    let b = b.ack(ack);
    let mut vxlan = vec![0x08, 0, 0, 0, 0, 0, 100, 0];
    b.write(&mut vxlan, payload).unwrap();
    let mut out = Vec::new();
    PacketBuilder::ethernet2(NEXT_HOP, BB_MAC)
        .ipv4(REGION_VTEP, POP_VTEP, 64)
        .udp(50_000, 4789)
        .write(&mut out, &vxlan)
        .unwrap();
    out
}

/// How a fake backend answers an HTTP check.
#[derive(Clone, Copy)]
enum Web {
    /// Connects and answers with this status (headers and a body in one
    /// segment, with FIN, as nginx does for short pages).
    Status(u16),
    /// Connects, then never answers the request.
    Mute,
    /// RST to the SYN.
    Refuse,
}

/// The backend's answers to one segment the checker sent.
fn web(frame: &[u8], how: Web, requests: &mut Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    const THEIRS: u32 = 50_000;
    let (tcp, payload) = sent_tcp(frame);
    let from = target(frame);
    match how {
        _ if tcp.rst => vec![],
        Web::Refuse if tcp.syn => {
            vec![from_backend(
                from,
                &tcp,
                0,
                "R",
                tcp.sequence_number + 1,
                &[],
            )]
        }
        _ if tcp.syn => vec![from_backend(
            from,
            &tcp,
            THEIRS,
            "S",
            tcp.sequence_number + 1,
            &[],
        )],
        Web::Status(code) if !payload.is_empty() => {
            requests.push(payload.clone());
            let ack = tcp.sequence_number + payload.len() as u32;
            let body = format!(
                "HTTP/1.1 {code} Whatever\r\nServer: fake\r\nContent-Length: 3\r\n\r\nok\n"
            );
            vec![from_backend(
                from,
                &tcp,
                THEIRS + 1,
                "PF",
                ack,
                body.as_bytes(),
            )]
        }
        _ => vec![],
    }
}

/// Runs every 5 ms from `from` to `to`: polls, lets `how` answer, ticks.
/// Returns what was sent and the requests the backends read.
fn run_web(
    c: &mut BackendChecker,
    t: &Tables,
    from: u64,
    to: u64,
    how: impl Fn([u8; 4]) -> Web,
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let (mut sent, mut requests) = (Vec::new(), Vec::new());
    for now in (from..to).step_by(5) {
        for f in poll(c, t, ms(now)) {
            for answer in web(&f, how(target(&f)), &mut requests) {
                assert!(c.on_frame(ms(now + 1), &answer));
            }
            sent.push(f);
        }
        c.tick(ms(now + 1));
    }
    (sent, requests)
}

fn health_of(c: &BackendChecker) -> Vec<(IpAddr, bool)> {
    c.service_health()
        .iter()
        .map(|(r, up)| (r.backend, *up))
        .collect()
}

#[test]
fn http_checks_read_the_status_and_a_wrong_one_takes_the_backend_down() {
    let s = http_spec();
    let (mut c, t) = checker(&s);
    let (sent, requests) = run_web(&mut c, &t, 0, 100, |_| Web::Status(200));
    assert!(
        c.service_health().iter().all(|(_, up)| *up),
        "{:?}",
        c.counters()
    );
    assert!(
        requests.len() >= 16,
        "{} requests {:?}",
        requests.len(),
        c.counters()
    );
    let text = String::from_utf8(requests[0].clone()).unwrap();
    assert!(
        text.starts_with("GET /healthz HTTP/1.1\r\nHost: 10.1.0.2") && text.ends_with("\r\n\r\n"),
        "{text}"
    );
    // Every exchange that got its status is closed with a RST.
    let rsts = sent.iter().filter(|f| sent_tcp(f).0.rst).count();
    assert!(
        rsts >= requests.len() - 2,
        "{rsts} RSTs, {} requests",
        requests.len()
    );
    assert_eq!(c.counters().http_bad_status, 0);
    // B answers 503 from 100 ms: down after 3 of them, well before a timeout.
    run_web(&mut c, &t, 100, 160, |a| {
        Web::Status(if a == B { 503 } else { 200 })
    });
    assert_eq!(
        health_of(&c),
        vec![
            (Ipv4Addr::from(A).into(), true),
            (Ipv4Addr::from(B).into(), false)
        ]
    );
    assert!(c.counters().http_bad_status >= 3);
    let event = c.pop_event().unwrap();
    assert!(
        event.to_string().contains("10.1.0.21:80: up -> down"),
        "{event}"
    );
    let report = c
        .reports()
        .into_iter()
        .find(|r| r.key.backend == IpAddr::from(B));
    assert_eq!(report.map(|r| r.last_status), Some(Some(503)));
    // 200 again: back up.
    run_web(&mut c, &t, 160, 400, |_| Web::Status(200));
    assert!(c.service_health().iter().all(|(_, up)| *up));
    assert!(c.pop_event().unwrap().to_string().contains("down -> up"));
}

#[test]
fn http_checks_fail_on_refusal_and_on_silence_and_reset_what_they_opened() {
    let s = http_spec();
    let (mut c, t) = checker(&s);
    // A refuses the SYN, B connects but never answers the request.
    let (sent, requests) = run_web(&mut c, &t, 0, 150, |a| {
        if a == A {
            Web::Refuse
        } else {
            Web::Mute
        }
    });
    assert!(c.service_health().iter().all(|(_, up)| !*up));
    assert!(requests.is_empty());
    assert!(c.counters().refused >= 3);
    // B's abandoned connections are reset once their timeout passed.
    let resets_to_b = sent
        .iter()
        .filter(|f| target(f) == B && sent_tcp(f).0.rst)
        .count();
    assert!(resets_to_b >= 3, "{resets_to_b}");
    assert_eq!(c.eips_down(), HashSet::from([IpAddr::from(EIP)]));
    // No exchange outlives its timeout.
    run_web(&mut c, &t, 150, 300, |_| Web::Status(200));
    c.tick(ms(1000));
    assert!(c.exchanges.is_empty());
}

#[test]
fn http_expect_and_host_are_the_operators() {
    let mut s = http_spec();
    let mut eip = s.eips.nth_mut(0).unwrap();
    let check = eip.services[0].check.as_mut().unwrap();
    check.expect = Some(eip_dataplane::check_spec::StatusRange {
        first: 404,
        last: 404,
    });
    check.host = Some("api.example".into());
    drop(eip);
    let (mut c, t) = checker(&s);
    let (_, requests) = run_web(&mut c, &t, 0, 100, |a| {
        Web::Status(if a == A { 404 } else { 200 })
    });
    assert!(String::from_utf8_lossy(&requests[0]).contains("\r\nHost: api.example\r\n"));
    assert_eq!(
        health_of(&c),
        vec![
            (Ipv4Addr::from(A).into(), true),
            (Ipv4Addr::from(B).into(), false)
        ]
    );
}

/// The production pipeline hands a backend's data segment (the status line)
/// to the control thread, as it does the SYN-ACK.
#[test]
fn the_pipeline_hands_http_answers_to_the_control_thread() {
    let s = http_spec();
    let (mut c, t) = checker(&s);
    let frames = poll(&mut c, &t, ms(10));
    let (tcp, _) = sent_tcp(&frames[0]);
    let input = from_backend(
        target(&frames[0]),
        &tcp,
        1,
        "PF",
        tcp.sequence_number + 61,
        b"HTTP/1.1 200 OK\r\n\r\n",
    );
    let mut buf = vec![0u8; 2048];
    buf[256..256 + input.len()].copy_from_slice(&input);
    let mut f = [Frame::new(&mut buf, 256, input.len(), 1)];
    let mut v = [Verdict::ToKernel];
    Pipeline::default().process(Timestamp(1), &t, &mut f, &mut v);
    assert_eq!(v[0], Verdict::ToControl);
}

#[test]
fn an_update_after_a_change_looks_only_at_what_changed() {
    let s = spec(CheckKind::Tcp);
    let (mut c, t) = checker(&s);
    run(&mut c, &t, 0, 60, |_| Some(false));
    assert_eq!(c.eips_down(), HashSet::from([IpAddr::from(EIP)]));
    let idents: Vec<u16> = c.targets.iter().map(|t| t.ident).collect();

    // Another EIP, derived from the description in force as the control
    // plane derives versions: the first keeps its checks' state.
    let mut next = s.clone();
    let mut svc = service(
        Protocol::Tcp,
        443,
        [backend(Ipv4Addr::new(10, 9, 9, 1), None, 1)],
    );
    svc.check = Some(check(CheckKind::Tcp));
    next.eips
        .push(service_eip(Ipv4Addr::new(192, 0, 2, 99), "beijing", [svc]));
    let t2 = Tables::build(&next, 2).unwrap();
    c.update(&next, &t2, ms(61));
    assert_eq!(c.targets.len(), 3);
    assert_eq!(
        c.targets[..2].iter().map(|t| t.ident).collect::<Vec<_>>(),
        idents,
        "kept in place, with their identifiers"
    );
    assert_eq!(c.eips_down(), HashSet::from([IpAddr::from(EIP)]));
    // The same checks as a walk of everything from scratch.
    let mut fresh = BackendChecker::new(NONCE);
    fresh.update(&next, &t2, ms(61));
    let keys = |c: &BackendChecker| {
        let mut k: Vec<_> = c.targets.iter().map(|t| t.key).collect();
        k.sort_by_key(|k| format!("{k:?}"));
        k
    };
    assert_eq!(keys(&c), keys(&fresh));
    // The down EIP removed: its checks go, nothing is down.
    next.eips.remove(IpAddr::from(EIP));
    let t3 = Tables::build(&next, 3).unwrap();
    c.update(&next, &t3, ms(62));
    assert_eq!(c.targets.len(), 1);
    assert!(c.eips_down().is_empty());
    assert_eq!(c.by_ident.len(), 1);
    assert_eq!(c.by_ident[&c.targets[0].ident], 0);
}
