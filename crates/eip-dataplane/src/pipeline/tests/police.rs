//! Per-EIP rate limits through the whole pipeline: fast and general paths,
//! both directions, the POP default, and a limit changed by a new table
//! version (buckets carry over).

use super::*;
use crate::tables::limits::LimitsSpec;
use crate::tables::TableDelta;
use crate::testkit::{BUFFER_LEN, HEADROOM};

/// Runs `n` copies of `input` as one batch at `now_ms`; returns how many went out.
fn batch(p: &mut Pipeline, t: &Tables, input: &[u8], port: PortId, n: usize, now_ms: u64) -> u64 {
    let mut bufs: Vec<Vec<u8>> = (0..n).map(|_| vec![0u8; BUFFER_LEN]).collect();
    let mut frames: Vec<Frame<'_>> = bufs
        .iter_mut()
        .map(|b| {
            b[HEADROOM..HEADROOM + input.len()].copy_from_slice(input);
            Frame::new(b, HEADROOM, input.len(), port)
        })
        .collect();
    let mut verdicts = vec![Verdict::ToKernel; n];
    p.process(Timestamp(now_ms * 1_000_000), t, &mut frames, &mut verdicts);
    verdicts
        .iter()
        .filter(|v| matches!(v, Verdict::Tx(_)))
        .count() as u64
}

/// Offers `per_ms` frames every millisecond from `from_ms` for `ms`; returns
/// how many went out.
fn offer(
    p: &mut Pipeline,
    t: &Tables,
    input: &[u8],
    port: PortId,
    per_ms: usize,
    from_ms: u64,
    ms: u64,
) -> u64 {
    (from_ms..from_ms + ms)
        .map(|now| batch(p, t, input, port, per_ms, now))
        .sum()
}

fn limited(spec: LimitsSpec) -> Tables {
    pop()
        .edit(|s| s.eips.nth_mut(0).unwrap().set_limits(Some(spec)))
        .tables()
}

fn slot(t: &Tables, a: [u8; 4]) -> usize {
    t.eip_slot(Ipv4Addr::from(a).into()).unwrap() as usize
}

#[test]
fn a_pps_cap_passes_its_rate_and_counts_the_rest_per_eip() {
    let t = limited(LimitsSpec {
        in_pps: Some(1000),
        ..Default::default()
    });
    let mut p = Pipeline::default();
    let frame = tcp_to(EIP_1TO1, 64, b"x");
    // 10,000 packets/s for one second: 1000, plus the first burst (10 ms).
    let passed = offer(&mut p, &t, &frame, INET, 10, 1000, 1000);
    assert!((1000..=1012).contains(&passed), "{passed}");
    let c = p.counters();
    assert_eq!(c.dropped(DropReason::OverPps), 10_000 - passed);
    assert_eq!(
        c.eip_policed[slot(&t, EIP_1TO1)].in_over_pps,
        10_000 - passed
    );
    assert_eq!(c.eip_in(slot(&t, EIP_1TO1)).packets, passed);
    // Another EIP through the same worker loses nothing.
    let other = from_client()
        .ipv4(CLIENT, EIP_SERVICE, 64)
        .udp(33333, 53)
        .build(b"q");
    assert_eq!(offer(&mut p, &t, &other, INET, 10, 2000, 100), 1000);
}

#[test]
fn a_bit_rate_cap_counts_ip_bytes_and_splits_between_workers() {
    // 8 Mbit/s shared by two workers: 4 Mbit/s here, 500 packets/s of 1000 IP bytes.
    let t = limited(LimitsSpec {
        in_bps: Some(8_000_000),
        ..Default::default()
    });
    let mut p = Pipeline::new(PipelineConfig {
        workers: 2,
        ..Default::default()
    });
    let frame = tcp_to(EIP_1TO1, 64, &[0u8; 1000 - 40]);
    let passed = offer(&mut p, &t, &frame, INET, 5, 1000, 2000);
    // Two seconds at 500/s, plus the first burst: 10 ms of 4 Mbit/s = 5 packets.
    assert!((1000..=1006).contains(&passed), "{passed}");
    assert_eq!(p.counters().dropped(DropReason::OverBps), 10_000 - passed);
}

#[test]
fn returns_and_the_general_path_are_policed_too() {
    let t = limited(LimitsSpec {
        out_pps: Some(100),
        ..Default::default()
    });
    let mut p = Pipeline::default();
    // Fast path: a TCP return.
    let ret = encapsulated(&return_tcp(BACKEND, 80, 64), REGION_VTEP, VNI);
    let passed = offer(&mut p, &t, &ret, BACKBONE, 10, 1000, 1000);
    assert!((100..=102).contains(&passed), "{passed}");
    assert_eq!(
        p.counters().eip_policed[slot(&t, EIP_1TO1)].out_over_pps,
        10_000 - passed
    );
    // Ingress is not capped.
    assert_eq!(
        offer(&mut p, &t, &tcp_to(EIP_1TO1, 64, b"x"), INET, 10, 2000, 10),
        100
    );
    // General path: an ICMP echo to the EIP under a pps cap.
    let t = limited(LimitsSpec {
        in_pps: Some(100),
        ..Default::default()
    });
    let ping = from_client()
        .ipv4(CLIENT, EIP_1TO1, 64)
        .icmpv4_echo_request(1, 1)
        .build(b"ping");
    let mut p = Pipeline::default();
    let passed = offer(&mut p, &t, &ping, INET, 10, 1000, 1000);
    assert!((100..=102).contains(&passed), "{passed}");
}

#[test]
fn the_pop_default_applies_unless_an_eip_lifts_it() {
    let t = pop()
        .edit(|s| {
            s.limits = Some(LimitsSpec {
                in_pps: Some(100),
                ..Default::default()
            });
            s.eips.nth_mut(1).unwrap().set_limits(Some(LimitsSpec {
                in_pps: Some(0),
                ..Default::default()
            }));
        })
        .tables();
    let mut p = Pipeline::default();
    let capped = offer(
        &mut p,
        &t,
        &tcp_to(EIP_1TO1, 64, b"x"),
        INET,
        10,
        1000,
        1000,
    );
    assert!((100..=102).contains(&capped), "{capped}");
    let free = from_client()
        .ipv4(CLIENT, EIP_SERVICE, 64)
        .udp(33333, 53)
        .build(b"q");
    assert_eq!(offer(&mut p, &t, &free, INET, 10, 1000, 1000), 10_000);
}

#[test]
fn a_changed_limit_applies_in_the_next_version_without_resetting_buckets() {
    let spec = |pps| {
        pop()
            .edit(|s| {
                s.eips.nth_mut(0).unwrap().set_limits(Some(LimitsSpec {
                    in_pps: Some(pps),
                    ..Default::default()
                }))
            })
            .spec()
    };
    let t1 = Tables::build(&spec(1000), 1).unwrap();
    let mut p = Pipeline::default();
    let frame = tcp_to(EIP_1TO1, 64, b"x");
    // Empty the bucket.
    offer(&mut p, &t1, &frame, INET, 100, 1000, 1);
    let after = spec(200);
    let delta = TableDelta {
        upsert: vec![after.eips.nth(0).unwrap().into_owned()],
        ..Default::default()
    };
    let t2 = t1.apply(&delta, &after, 2, 2).unwrap();
    assert_eq!(
        t2.eip_slot(Ipv4Addr::from(EIP_1TO1).into()),
        t1.eip_slot(Ipv4Addr::from(EIP_1TO1).into())
    );
    // The bucket is not refilled by the swap: one second at the new rate.
    let passed = offer(&mut p, &t2, &frame, INET, 10, 1001, 1000);
    assert!((199..=201).contains(&passed), "{passed}");
    // Limit lifted: everything passes.
    let t3 = t2
        .apply(
            &TableDelta {
                upsert: vec![pop().spec().eips.nth(0).unwrap().into_owned()],
                ..Default::default()
            },
            &pop().spec(),
            3,
            3,
        )
        .unwrap();
    assert_eq!(offer(&mut p, &t3, &frame, INET, 10, 3000, 10), 100);
}

#[test]
fn without_limits_nothing_is_allocated_per_eip() {
    let t = tables();
    let mut p = Pipeline::default();
    offer(&mut p, &t, &tcp_to(EIP_1TO1, 64, b"x"), INET, 10, 1000, 10);
    assert!(p.counters().eip_policed.is_empty());
    assert_eq!(p.counters().total_drops(), 0);
}
