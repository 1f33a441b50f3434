//! Arbitrary and mutated frames on both ports: never a panic, always one verdict.
//! `EIP_FUZZ_CASES` sets the number of cases (default 2000).

use super::*;
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("EIP_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

/// Valid packets of every kind the pipeline handles, to mutate.
fn seeds() -> Vec<Vec<u8>> {
    let mut s = all_inputs();
    s.push(tcp_to(EIP_1TO1, 64, &[7u8; 200]));
    s
}

fn run_all(t: &Tables, frame: &[u8]) {
    for port in [INET, BACKBONE] {
        let (verdict, out, c) = run(t, frame, port);
        assert_eq!(c.happened(Event::Rx), 1);
        if let Verdict::Tx(p) = verdict {
            assert!((p as usize) < t.ports.len());
            assert!(out.len() >= 14);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn arbitrary_bytes_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..200)) {
        run_all(&tables(), &frame);
    }

    #[test]
    fn mutated_packets_never_panic(
        seed in 0usize..64,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let seeds = seeds();
        let mut frame = seeds[seed % seeds.len()].clone();
        for (at, value) in edits {
            let i = at % frame.len();
            frame[i] = value;
        }
        let keep = cut % (frame.len() + 1);
        if keep > 0 && cut % 3 == 0 {
            frame.truncate(keep);
        }
        run_all(&tables(), &frame);
    }
}
