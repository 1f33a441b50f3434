use super::*;

#[test]
fn a_worker_visits_only_the_chunks_that_changed() {
    let mut s = EipSlab::default();
    for slot in [3, CHUNK as EipId + 5, 2 * CHUNK as EipId] {
        s.set_epoch(slot, 1);
    }
    let mut seen = Vec::new();
    let mut visited = Vec::new();
    s.for_each_changed(&mut seen, |slot, _| visited.push(slot));
    assert_eq!(visited.len(), 3 * CHUNK, "a first look visits everything");

    let old = s.clone();
    s.set_epoch(CHUNK as EipId + 9, 4);
    visited.clear();
    let mut epochs = Vec::new();
    s.for_each_changed(&mut seen, |slot, epoch| {
        visited.push(slot);
        epochs.push((slot, epoch));
    });
    assert_eq!(
        visited,
        (CHUNK as EipId..2 * CHUNK as EipId).collect::<Vec<_>>()
    );
    assert!(epochs.contains(&(CHUNK as EipId + 9, 4)));
    assert!(epochs.contains(&(CHUNK as EipId + 5, 1)));

    // Going back to an older snapshot is a change too; nothing twice.
    visited.clear();
    old.for_each_changed(&mut seen, |slot, _| visited.push(slot));
    assert_eq!(visited.len(), CHUNK);
    visited.clear();
    old.for_each_changed(&mut seen, |slot, _| visited.push(slot));
    assert!(visited.is_empty());
}

#[test]
fn records_are_compact() {
    assert_eq!(std::mem::size_of::<Record>(), 16);
}

#[test]
fn a_reused_slot_has_a_new_epoch_and_a_replaced_eip_keeps_it() {
    let v4 = |a: u32| NewEip {
        address: IpAddr::V4(Ipv4Addr::from(a)),
        region: 1,
        backend: Some(IpAddr::V4(Ipv4Addr::from(a + 1))),
        services: Arc::from(Vec::new()),
        limits: Limits::INHERIT,
        acl: None,
    };
    let mut s = EipSlab::default();
    let slot = s.allocate();
    s.put(slot, v4(10));
    let e = s.at(slot);
    assert_eq!(
        (e.address, e.backend, e.region, e.epoch),
        (v4(10).address, v4(10).backend, 1, 0)
    );
    s.take(slot, false);
    s.put(slot, v4(10));
    assert_eq!(s.epoch(slot), 0);
    s.take(slot, true);
    assert!(s.get(slot).is_none());
    assert_eq!(s.allocate(), slot);
    let v6 = NewEip {
        address: "2001:db8::1".parse().unwrap(),
        region: 2,
        backend: None,
        services: Arc::from(Vec::new()),
        limits: Limits::INHERIT,
        acl: None,
    };
    s.put(slot, v6.clone());
    let e = s.at(slot);
    assert_eq!(
        (e.address, e.backend, e.epoch, s.len()),
        (v6.address, None, 1, 1)
    );
    s.put(slot, v4(20));
    assert_eq!((s.at(slot).address, s.len()), (v4(20).address, 1));
    assert!(s.extras.iter().all(Option::is_none));
}

#[test]
fn extra_parts_are_held_per_chunk_shared_by_copies_and_freed_with_the_last() {
    let v6 = |last: u16| NewEip {
        address: IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last)),
        region: 0,
        backend: None,
        services: Arc::from(Vec::new()),
        limits: Limits::INHERIT,
        acl: None,
    };
    let mut s = EipSlab::default();
    let (a, b) = (5, 2 * CHUNK as EipId + 7);
    s.reserve(a);
    s.reserve(b);
    s.put(a, v6(1));
    s.put(b, v6(2));
    // Chunks 0 and 2 hold one each; chunk 1 none.
    let held: Vec<bool> = s.extras.iter().map(Option::is_some).collect();
    assert_eq!(held, [true, false, true]);
    assert_eq!(s.at(b).address, v6(2).address);

    // A copy changed in chunk 2 shares chunk 0, and the untouched part.
    let mut copy = s.clone();
    copy.reserve(b + 1);
    copy.put(b + 1, v6(3));
    let (old, new) = (
        s.extras[2].as_ref().unwrap(),
        copy.extras[2].as_ref().unwrap(),
    );
    assert!(!Arc::ptr_eq(old, new));
    assert!(Arc::ptr_eq(
        old[b as usize % CHUNK].as_ref().unwrap(),
        new[b as usize % CHUNK].as_ref().unwrap()
    ));
    assert!(Arc::ptr_eq(
        s.extras[0].as_ref().unwrap(),
        copy.extras[0].as_ref().unwrap()
    ));
    assert_eq!(s.get(b + 1).map(|e| e.address), None);

    // The last extra part of a chunk leaving frees the chunk's table.
    s.take(a, true).unwrap();
    assert!(s.extras[0].is_none());
    assert_eq!(s.at(b).address, v6(2).address);
}
