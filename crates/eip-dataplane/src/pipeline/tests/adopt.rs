//! What a worker's pipeline does when it is handed a new snapshot.

use super::*;
use crate::counters::CHUNK_SLOTS;
use crate::tables::TableDelta;

/// Where the counters of the first and the last slot are.
fn counter_buffers(p: &Pipeline, slots: usize) -> [usize; 2] {
    let c = p.counters();
    [
        c.eips.inbound(0) as *const _ as usize,
        c.eips.outbound(slots - 1) as *const _ as usize,
    ]
}

/// EIPs added after a build (a quarter more slots) do not move the per-EIP
/// counters: moving them would be a copy on the worker, inside a batch.
#[test]
fn added_eips_do_not_move_the_counters() {
    let spec = pop().one_to_one_eips(4000, "bj").spec();
    let t = Tables::build(&spec, 1).unwrap();
    let mut p = Pipeline::default();
    p.process(Timestamp(1), &t, &mut [], &mut []);
    let slots = t.slot_capacity();
    let before = counter_buffers(&p, slots);
    assert!(p.counters().eips.slots() >= slots);

    let mut after = spec.clone();
    let added: Vec<_> = (0..slots as u32 / 4)
        .map(|k| {
            pop::one_to_one(
                pop::eip_addr(10_000 + k),
                "bj",
                pop::backend_addr(10_000 + k),
            )
        })
        .collect();
    for e in &added {
        after.eips.push(e.clone());
    }
    let delta = TableDelta {
        upsert: added,
        ..TableDelta::default()
    };
    let t2 = t.apply(&delta, &after, 2, 2).unwrap();
    assert!(t2.slot_capacity() >= slots + slots / 4);
    p.process(Timestamp(2), &t2, &mut [], &mut []);
    assert!(p.counters().eips.slots() >= t2.slot_capacity());
    assert!(p.counters().eips.slots() < t2.slot_capacity() + CHUNK_SLOTS);
    assert_eq!(counter_buffers(&p, slots), before);
}
