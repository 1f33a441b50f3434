//! Floods (issue 11, item 5): non-first fragments keep the fragment table's
//! size fixed, die under their own reason and leave other traffic alone; first
//! fragments' entries expire; ICMP errors the POP originates stay rate limited.

use super::*;

const NOW: u64 = 1_000_000_000;

/// Runs `inputs` (arriving on the Internet port) through `p` in batches of 64 at
/// `now`; returns the verdicts.
fn run_batches(p: &mut Pipeline, t: &Tables, now: u64, inputs: &[Vec<u8>]) -> Vec<Verdict> {
    let mut out = Vec::with_capacity(inputs.len());
    for chunk in inputs.chunks(64) {
        let mut bufs: Vec<Vec<u8>> = chunk
            .iter()
            .map(|f| {
                let mut b = vec![0u8; crate::testkit::BUFFER_LEN];
                b[crate::testkit::HEADROOM..][..f.len()].copy_from_slice(f);
                b
            })
            .collect();
        let mut frames: Vec<Frame<'_>> = bufs
            .iter_mut()
            .zip(chunk)
            .map(|(b, f)| Frame::new(b, crate::testkit::HEADROOM, f.len(), INET))
            .collect();
        let mut verdicts = vec![Verdict::ToKernel; frames.len()];
        p.process(Timestamp(now), t, &mut frames, &mut verdicts);
        out.extend(verdicts);
    }
    out
}

/// A UDP fragment from `src` to `dst`: the first (with the UDP header) or a
/// later one at `offset` 8-byte units, IP ID `ident`.
fn fragment(src: [u8; 4], dst: [u8; 4], ident: u16, offset: u16, sport: u16) -> Vec<u8> {
    let mut f = if offset == 0 {
        from_client()
            .ipv4(src, dst, 64)
            .udp(sport, 53)
            .build(&[0x55; 64])
    } else {
        from_client()
            .ipv4(src, dst, 64)
            .ip_payload(17)
            .build(&[0x55; 64])
    };
    let ip = &mut f[14..34];
    ip[4..6].copy_from_slice(&ident.to_be_bytes());
    let more = if offset == 0 { 0x2000 } else { 0 };
    ip[6..8].copy_from_slice(&(more | offset).to_be_bytes());
    ip[10..12].copy_from_slice(&[0, 0]);
    let sum = crate::wire::checksum::finish(crate::wire::checksum::sum(ip));
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f
}

#[test]
fn a_flood_of_non_first_fragments_is_bounded_counted_and_harmless() {
    let t = tables();
    let mut p = Pipeline::default();
    let slots = p.fragments.capacity();
    let mut inputs = Vec::new();
    for i in 0..100_000u32 {
        // Spoofed-looking but valid sources, every IP ID different.
        let src = [203, 0, (113 + (i >> 16)) as u8, (i >> 8) as u8];
        inputs.push(fragment(src, EIP_SERVICE, i as u16, 185, 0));
        if i % 1000 == 0 {
            inputs.push(tcp_to(EIP_1TO1, 64, b"regular"));
        }
    }
    let verdicts = run_batches(&mut p, &t, NOW, &inputs);
    let c = p.counters();
    assert_eq!(c.dropped(DropReason::FragmentWithoutHead), 100_000);
    assert_eq!(c.total_drops(), 100_000, "nothing else dropped");
    assert_eq!(c.happened(crate::counters::Event::Encapsulated), 100);
    assert_eq!(
        verdicts
            .iter()
            .filter(|v| matches!(v, Verdict::Tx(_)))
            .count(),
        100,
        "every regular packet went through"
    );
    assert_eq!(p.fragments.capacity(), slots, "the table did not grow");

    // A flood of first fragments overwrites entries but never grows the table;
    // a datagram whose first fragment came last still goes to its backend.
    let firsts: Vec<Vec<u8>> = (0..100_000u32)
        .map(|i| {
            fragment(
                [203, 0, 113, (i >> 8) as u8],
                EIP_SERVICE,
                i as u16,
                0,
                5000,
            )
        })
        .collect();
    run_batches(&mut p, &t, NOW, &firsts);
    assert_eq!(p.fragments.capacity(), slots);
    let pair = [
        fragment(CLIENT, EIP_SERVICE, 0xBEEF, 0, 40000),
        fragment(CLIENT, EIP_SERVICE, 0xBEEF, 9, 0),
    ];
    let v = run_batches(&mut p, &t, NOW, &pair);
    assert!(v.iter().all(|v| matches!(v, Verdict::Tx(_))), "{v:?}");
}

#[test]
fn fragment_entries_expire() {
    let t = tables();
    let mut p = Pipeline::default();
    let first = fragment(CLIENT, EIP_SERVICE, 7, 0, 40000);
    let later = fragment(CLIENT, EIP_SERVICE, 7, 9, 0);
    run_batches(&mut p, &t, NOW, std::slice::from_ref(&first));
    let v = run_batches(
        &mut p,
        &t,
        NOW + FRAGMENT_TIMEOUT_NS - 1,
        std::slice::from_ref(&later),
    );
    assert!(matches!(v[0], Verdict::Tx(_)), "within the timeout: {v:?}");
    let v = run_batches(
        &mut p,
        &t,
        NOW + FRAGMENT_TIMEOUT_NS,
        std::slice::from_ref(&later),
    );
    assert_eq!(
        v[0],
        Verdict::Drop(DropReason::FragmentWithoutHead),
        "expired"
    );
}

#[test]
fn icmp_errors_the_pop_originates_are_rate_limited() {
    let t = tables();
    let config = PipelineConfig::default();
    let mut p = Pipeline::new(config.clone());
    let expired: Vec<Vec<u8>> = (0..1000).map(|_| tcp_to(EIP_1TO1, 1, b"x")).collect();
    let sent = |v: &[Verdict]| v.iter().filter(|v| matches!(v, Verdict::Tx(_))).count() as u64;
    // A burst at one instant: no more errors than the burst.
    let v = run_batches(&mut p, &t, NOW, &expired);
    assert_eq!(sent(&v), config.icmp_error_burst);
    assert_eq!(
        p.counters().dropped(DropReason::TtlExpired),
        1000,
        "all counted"
    );
    // A tenth of a second later: a tenth of the rate, capped at the burst.
    let v = run_batches(&mut p, &t, NOW + 100_000_000, &expired);
    assert_eq!(
        sent(&v),
        (config.icmp_errors_per_second / 10).min(config.icmp_error_burst)
    );
    // Ten seconds of flood at 1,000 per 10 ms never beat rate * time + burst.
    let mut total = 0;
    for i in 1..=1000u64 {
        total += sent(&run_batches(
            &mut p,
            &t,
            NOW + 100_000_000 + i * 10_000_000,
            &expired,
        ));
    }
    assert!(
        total <= config.icmp_errors_per_second * 10 + config.icmp_error_burst,
        "{total} errors in 10 s"
    );
    assert!(
        total >= config.icmp_errors_per_second * 9,
        "{total}: the budget refills"
    );
}
