use super::*;
use proptest::prelude::*;
use std::collections::HashMap;

#[test]
fn a_change_copies_one_shard() {
    let mut a = Index::<u32>::default();
    for i in 0..10_000 {
        assert_eq!(a.insert(i, i), None);
    }
    let mut b = a.clone();
    assert_eq!(b.insert(5, 50), Some(5));
    assert_eq!(b.remove(7), Some(7));
    assert_eq!(b.claim(8, 1), Some(8));
    assert_eq!((a.get(5), b.get(5)), (Some(5), Some(50)));
    assert_eq!((a.get(7), b.get(7)), (Some(7), None));
    assert_eq!((a.len(), b.len()), (10_000, 9_999));
    assert!(b.shared_shards(&a) >= SHARDS - 2);
    let (added, gone) = b.key_changes(&a);
    assert_eq!((added, gone), (vec![], vec![7]));
}

#[test]
fn a_lookup_begun_and_finished_is_a_lookup() {
    let empty = Index::<u32>::default();
    assert!(empty.start(5).is_none(), "an empty shard: nothing to begin");
    let mut a = Index::<u32>::default();
    for i in 0..3_000 {
        a.insert(i * 3, i);
    }
    // Hits, misses (in shards that hold keys), and keys removed (whose probe
    // runs meet entries shifted back).
    for i in (0..3_000).step_by(7) {
        a.remove(i * 3);
    }
    for k in 0..9_100 {
        assert_eq!(a.start(k).and_then(Probe::finish), a.get(k), "key {k}");
    }
}

#[test]
fn built_and_inserted_agree() {
    let keys: Vec<u32> = (0..50_000u32).map(|i| 0x0A00_0000 + i * 7).collect();
    let mut b = IndexBuilder::<u32>::with_capacity(keys.len());
    let mut inserted = Index::<u32>::default();
    for (slot, &k) in keys.iter().enumerate() {
        b.push(k, slot as u32);
        inserted.insert(k, slot as u32);
    }
    b.push(keys[3], 3);
    let built = b.build().unwrap();
    assert_eq!((built.len(), inserted.len()), (keys.len(), keys.len()));
    for (slot, &k) in keys.iter().enumerate() {
        assert_eq!(built.get(k), Some(slot as u32));
        assert_eq!(inserted.get(k), Some(slot as u32));
    }
    assert_eq!(built.get(0x0A00_0001), None);
    // 8 bytes an entry at load 0.8, plus the shard pointers (the EIP
    // index's 16-byte entries take twice that).
    let per_key = (built.heap_bytes() - SHARDS * (8 + 40)) / keys.len();
    assert!((10..=11).contains(&per_key), "{per_key} bytes a key");
}

#[test]
fn a_key_with_two_slots_is_refused() {
    let mut b = IndexBuilder::<u32>::with_capacity(2);
    b.push(1, 1);
    b.push(1, 2);
    assert_eq!(b.build().unwrap_err(), 1);
}

#[test]
fn a_flat_index_finds_what_it_was_built_from() {
    let entries: Vec<(u64, u32)> = (0..300u64)
        .map(|i| ((i << 32) | (i * 3), i as u32))
        .collect();
    let flat: FlatIndex<u64> = entries.iter().copied().collect();
    assert_eq!(flat.len(), 300);
    for &(k, v) in &entries {
        assert_eq!(flat.get(k), Some(v));
    }
    assert_eq!(flat.get(1 << 32), None);
    assert_eq!(FlatIndex::<u64>::default().get(7), None);
    let mut keys: Vec<u64> = flat.keys().collect();
    keys.sort_unstable();
    assert_eq!(keys, entries.iter().map(|e| e.0).collect::<Vec<_>>());
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u32, u32),
    Remove(u32),
}

fn op() -> impl Strategy<Value = Op> {
    // Few distinct keys, so that inserts, removes and probe runs collide.
    prop_oneof![
        (0u32..400, 0u32..1000).prop_map(|(k, v)| Op::Insert(k * 4099, v)),
        (0u32..400).prop_map(|k| Op::Remove(k * 4099)),
    ]
}

proptest! {
    /// Any sequence of inserts and removes gives the same answers as a
    /// `HashMap`: in one shard holding every key (long probe runs that
    /// wrap around, removal shifting entries back, growth), and in the
    /// index, where an older clone keeps its own answers.
    #[test]
    fn behaves_as_a_map(ops in proptest::collection::vec(op(), 0..3000)) {
        let mut index = Index::<u32>::default();
        let mut shard = Shard::default();
        let mut model = HashMap::new();
        let mut before = None;
        for (n, op) in ops.iter().enumerate() {
            if n == ops.len() / 2 {
                before = Some((index.clone(), model.clone()));
            }
            match *op {
                Op::Insert(k, v) => {
                    prop_assert_eq!(shard.insert(k, hash(k), v), model.get(&k).copied());
                    prop_assert_eq!(index.insert(k, v), model.insert(k, v));
                }
                Op::Remove(k) => {
                    prop_assert_eq!(shard.remove(k, hash(k)), model.get(&k).copied());
                    prop_assert_eq!(index.remove(k), model.remove(&k));
                }
            }
        }
        prop_assert_eq!(index.len(), model.len());
        prop_assert_eq!(shard.len, model.len());
        for k in (0u32..400).map(|k| k * 4099) {
            prop_assert_eq!(index.get(k), model.get(&k).copied());
            prop_assert_eq!(shard.get(k, hash(k)), model.get(&k).copied());
        }
        let mut keys: Vec<u32> = index.keys().collect();
        keys.sort_unstable();
        let mut expected: Vec<u32> = model.keys().copied().collect();
        expected.sort_unstable();
        prop_assert_eq!(keys, expected);
        if let Some((old, old_model)) = before {
            for k in (0u32..400).map(|k| k * 4099) {
                prop_assert_eq!(old.get(k), old_model.get(&k).copied());
            }
        }
    }
}
