//! Large tables: the batch loop that prefetches its lookups and hands the slot
//! it found to the fast path must do exactly what the plain loop does, and a
//! worker claims the slots that changed hands when it adopts a snapshot, since
//! its fast paths count without testing epochs.

use super::*;
use crate::tables::TableDelta;
use crate::testkit::{BUFFER_LEN, HEADROOM};

const EXTRA: u32 = 300;

/// Every kind of frame the loop meets: ingress to the test POP's EIPs and to
/// the extra ones, returns, what is not ours, what the general path handles
/// (TTL 1, IPv6, a service), and what is too short to read; each with the
/// port it arrives on.
fn mixed_frames() -> Vec<(Vec<u8>, PortId)> {
    let mut frames = vec![
        (tcp_to(EIP_1TO1, 64, b"x"), INET),
        (tcp_to(EIP_1TO1, 1, b"ttl"), INET),
        (tcp_to([198, 51, 100, 7], 64, b"not ours"), INET),
        (
            from_client()
                .ipv4(CLIENT, EIP_SERVICE, 64)
                .udp(40001, 53)
                .build(b"dns"),
            INET,
        ),
        (
            encapsulated(&return_tcp(BACKEND, 80, 64), REGION_VTEP, VNI),
            BACKBONE,
        ),
        (
            encapsulated(&return_tcp(BACKEND, 80, 64), [10, 9, 9, 9], VNI),
            BACKBONE,
        ),
        (
            from_client()
                .ipv6(v6(CLIENT_V6), v6(EIP_V6), 64)
                .tcp(40000, 80)
                .build(b"v6"),
            INET,
        ),
    ];
    let short = frames[0].0[..30].to_vec();
    frames.push((short, INET));
    for i in 0..EXTRA {
        let eip = pop::eip_addr(i).octets();
        frames.push((tcp_to(eip, 64, &[i as u8; 3]), INET));
        if i % 3 == 0 {
            let back = return_tcp(pop::backend_addr(i).octets(), 80, 64);
            frames.push((encapsulated(&back, REGION_VTEP, VNI), BACKBONE));
        }
    }
    frames
}

/// `frames`, all arriving from the Internet.
fn from_internet(frames: Vec<Vec<u8>>) -> Vec<(Vec<u8>, PortId)> {
    frames.into_iter().map(|f| (f, INET)).collect()
}

/// Runs `frames` through `p` in batches of `batch`; the verdicts and frames out.
pub(super) fn run_batches(
    p: &mut Pipeline,
    t: &Tables,
    frames: &[(Vec<u8>, PortId)],
    batch: usize,
) -> Vec<(Verdict, Vec<u8>)> {
    let mut out = Vec::new();
    for group in frames.chunks(batch) {
        let mut bufs: Vec<Vec<u8>> = group
            .iter()
            .map(|(f, _)| {
                let mut buf = vec![0u8; BUFFER_LEN];
                buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
                buf
            })
            .collect();
        let mut views: Vec<Frame<'_>> = bufs
            .iter_mut()
            .zip(group)
            .map(|(buf, (f, port))| Frame::new(buf, HEADROOM, f.len(), *port))
            .collect();
        let mut verdicts = vec![Verdict::ToKernel; views.len()];
        p.process(Timestamp(1_000_000_000), t, &mut views, &mut verdicts);
        out.extend(
            verdicts
                .into_iter()
                .zip(views.iter().map(|f| f.data().to_vec())),
        );
    }
    out
}

fn pipeline(prefetch_above_eips: usize) -> Pipeline {
    Pipeline::new(PipelineConfig {
        prefetch_above_eips,
        ..Default::default()
    })
}

#[test]
fn the_prefetching_loop_does_what_the_plain_one_does() {
    let t = pop().one_to_one_eips(EXTRA, "bj").tables();
    let frames = mixed_frames();
    for batch in [1, 5, 8, 16, 17, 32, 33, 64, 100] {
        let mut plain = pipeline(usize::MAX);
        let mut prefetching = pipeline(0);
        let a = run_batches(&mut plain, &t, &frames, batch);
        let b = run_batches(&mut prefetching, &t, &frames, batch);
        assert_eq!(a, b, "batch {batch}");
        let (ca, cb) = (plain.counters(), prefetching.counters());
        assert_eq!(ca.eips, cb.eips, "batch {batch}");
        assert_eq!(ca.drops, cb.drops, "batch {batch}");
        assert_eq!(ca.events, cb.events, "batch {batch}");
    }
    // The mix is what it says: most frames went through, both ways.
    let mut p = pipeline(0);
    run_batches(&mut p, &t, &frames, 64);
    let c = p.counters();
    assert!(c.happened(Event::Encapsulated) > u64::from(EXTRA));
    assert!(c.happened(Event::Decapsulated) > u64::from(EXTRA) / 3);
    assert!(c.total_drops() > 0);
}

#[test]
fn a_slot_that_changed_hands_counts_from_zero() {
    let spec = pop().one_to_one_eips(EXTRA, "bj").spec();
    let t = Tables::build(&spec, 1).unwrap();
    let old = pop::eip_addr(7);
    let slot = t.eip_v4(old.octets()).unwrap();
    for prefetch in [usize::MAX, 0] {
        let mut p = pipeline(prefetch);
        let kept = pop::eip_addr(8).octets();
        let kept_slot = t.eip_v4(kept).unwrap() as usize;
        let mut four = vec![tcp_to(old.octets(), 64, b"abc"); 3];
        four.push(tcp_to(kept, 64, b"abc"));
        run_batches(&mut p, &t, &from_internet(four), 64);
        assert_eq!(p.counters().eip_in(slot as usize).packets, 3);

        // The old EIP goes, a new one takes its slot (last freed, first reused).
        let new = Ipv4Addr::new(192, 0, 2, 99);
        let mut after = spec.clone();
        after.eips.retain(|e| e.address != IpAddr::V4(old));
        let added = pop::one_to_one(new, "bj", Ipv4Addr::new(10, 1, 9, 9));
        after.eips.push(added.clone());
        let delta = TableDelta {
            upsert: vec![added],
            remove: vec![IpAddr::V4(old)],
            ..Default::default()
        };
        let t2 = t.apply(&delta, &after, 2, 2).unwrap();
        assert_eq!(t2.eip_v4(new.octets()), Some(slot), "the slot is reused");
        assert_ne!(t2.eips.epoch(slot), t.eips.epoch(slot));

        // Adopting the snapshot restarts the slot's counters, before any packet.
        p.process(Timestamp(1), &t2, &mut [], &mut []);
        let c = p.counters();
        assert_eq!(c.eip_in(slot as usize), Default::default());
        assert_eq!(c.eip_epoch(slot as usize), t2.eips.epoch(slot));
        let one = from_internet(vec![tcp_to(new.octets(), 64, b"abc")]);
        run_batches(&mut p, &t2, &one, 64);
        assert_eq!(p.counters().eip_in(slot as usize).packets, 1);
        // A slot that kept its EIP kept its count.
        run_batches(
            &mut p,
            &t2,
            &from_internet(vec![tcp_to(kept, 64, b"abc")]),
            64,
        );
        assert_eq!(p.counters().eip_in(kept_slot).packets, 2);
    }
}

fn v6(s: &str) -> [u8; 16] {
    s.parse::<Ipv6Addr>().unwrap().octets()
}
