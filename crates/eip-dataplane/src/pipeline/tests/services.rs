//! Services on the fast path: whatever it decides for a flow to an EIP with
//! services (its own pick from the precomputed IPv4 targets, the 1:1 fallback
//! for a port no service has, or leaving the frame to the general path for a
//! drained pool) is what the general path decides, frame byte for frame byte.

use super::*;

const EIP: [u8; 4] = [192, 0, 2, 77];
const FALLBACK: [u8; 4] = [10, 9, 0, 1];

/// An EIP with a TCP/443 pool of 40 IPv4 backends (every third on another
/// port, weights 1 to 4), a drained UDP/53 pool, and a 1:1 fallback backend
/// for every other port.
fn services_pop() -> Tables {
    let pool = (0..40u8).map(|i| {
        let port = (i % 3 == 0).then_some(8000 + u16::from(i));
        pop::backend(Ipv4Addr::new(10, 9, 1, i), port, u32::from(i % 4) + 1)
    });
    let mut eip = pop::service_eip(
        Ipv4Addr::from(EIP),
        "bj",
        [
            pop::service(Protocol::Tcp, 443, pool),
            pop::service(
                Protocol::Udp,
                53,
                [pop::backend(Ipv4Addr::new(10, 9, 2, 1), None, 0)],
            ),
        ],
    );
    eip.backend = Some(Ipv4Addr::from(FALLBACK).into());
    pop().eip(eip).tables()
}

/// A verdict and the frame as the pipeline left it.
type Outcome = (Verdict, Vec<u8>);

/// The fast path's outcome (`None`: left to the general path), and the
/// general path's, each on its own copy of `input`.
fn both_paths(t: &Tables, input: &[u8]) -> (Option<Outcome>, Outcome) {
    let (fast, fast_frame, _) = one_path(t, input, true);
    let (general, general_frame, _) = one_path(t, input, false);
    (
        fast.map(|v| (v, fast_frame)),
        (general.unwrap(), general_frame),
    )
}

fn flow(protocol: Protocol, sport: u16, dport: u16) -> Vec<u8> {
    let b = from_client().ipv4(CLIENT, EIP, 64);
    match protocol {
        Protocol::Tcp => b.tcp(sport, dport).seq(1).build(b"hello"),
        Protocol::Udp => b.udp(sport, dport).build(b"hello"),
    }
}

#[test]
fn fast_and_general_path_pick_the_same_backend_for_every_flow() {
    let t = services_pop();
    let mut backends = std::collections::HashSet::new();
    for i in 0..2000u16 {
        let input = flow(Protocol::Tcp, 1024 + i * 7, 443);
        let (fast, general) = both_paths(&t, &input);
        let fast = fast.expect("a flow to an IPv4 pool stays on the fast path");
        assert_eq!(fast, general, "flow {i}");
        assert_eq!(fast.0, Verdict::Tx(BACKBONE));
        let inner = decapsulate(&fast.1);
        let h = verify(inner);
        let Some(NetHeaders::Ipv4(ip, _)) = h.net else {
            panic!("not IPv4")
        };
        backends.insert(ip.destination);
    }
    // Maglev spreads 2000 flows over (nearly) every one of the 40 backends.
    assert!(backends.len() > 35, "{} backends", backends.len());
}

#[test]
fn other_ports_and_drained_pools_decide_alike() {
    let t = services_pop();
    let cases = [
        // No service on this port: the 1:1 fallback, on the fast path.
        (Protocol::Tcp, 80, Some(FALLBACK)),
        (Protocol::Udp, 443, Some(FALLBACK)),
        // Every backend drained: the general path drops it.
        (Protocol::Udp, 53, None),
    ];
    for (protocol, dport, to) in cases {
        for sport in [1000u16, 2000, 3000] {
            let input = flow(protocol, sport, dport);
            let (fast, general) = both_paths(&t, &input);
            match to {
                Some(backend) => {
                    let fast = fast.expect("stays on the fast path");
                    assert_eq!(fast, general, "{protocol:?}/{dport}");
                    let h = verify(decapsulate(&fast.1));
                    let Some(NetHeaders::Ipv4(ip, _)) = h.net else {
                        panic!("not IPv4")
                    };
                    assert_eq!(ip.destination, backend, "{protocol:?}/{dport}");
                }
                None => {
                    assert_eq!(fast, None, "{protocol:?}/{dport} is the general path's");
                    assert!(
                        matches!(general.0, Verdict::Drop(_)),
                        "{protocol:?}/{dport}: {:?}",
                        general.0
                    );
                }
            }
        }
    }
}
