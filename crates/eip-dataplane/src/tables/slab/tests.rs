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
