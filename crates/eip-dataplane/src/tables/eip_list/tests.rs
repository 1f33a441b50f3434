use super::*;
use crate::tables::Protocol;
use crate::testkit::pop;

/// A plain EIP (kept packed) when `a` is IPv4.
fn eip(a: &str) -> EipSpec {
    EipSpec::new(a.parse().unwrap(), "r", Some("10.0.0.1".parse().unwrap()))
}

fn addrs(l: &EipList) -> Vec<String> {
    l.iter().map(|e| e.address.to_string()).collect()
}

#[test]
fn keeps_order_and_finds_by_address() {
    let mut l: EipList = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
        .map(eip)
        .into_iter()
        .collect();
    let shared = l.clone();
    assert_eq!(l.remove("192.0.2.2".parse().unwrap()).unwrap().region, "r");
    l.push(eip("192.0.2.9"));
    l.by_address_mut("192.0.2.3".parse().unwrap())
        .unwrap()
        .region = "s".into();
    assert_eq!(addrs(&l), ["192.0.2.1", "192.0.2.3", "192.0.2.9"]);
    assert_eq!(l.len(), 3);
    assert_eq!(l.position("192.0.2.9".parse().unwrap()), Some(2));
    assert_eq!(l.nth(1).unwrap().region, "s");
    assert!(l.by_address("192.0.2.2".parse().unwrap()).is_none());
    // The clone taken before is untouched.
    assert_eq!(addrs(&shared), ["192.0.2.1", "192.0.2.2", "192.0.2.3"]);
    assert_eq!(shared.nth(2).unwrap().region, "r");
    assert_ne!(l, shared);
}

fn plain(a: &str, backend: &str) -> EipSpec {
    EipSpec::new(a.parse().unwrap(), "r", Some(backend.parse().unwrap()))
}

fn is_plain(l: &EipList, a: &str) -> bool {
    let at = l.index.get(a.parse().unwrap()).unwrap() as usize;
    matches!(l.entries[at], Stored::Plain { .. })
}

#[test]
fn a_plain_eip_takes_16_bytes_and_reads_back_whole() {
    assert_eq!(std::mem::size_of::<Stored>(), 16);
    assert_eq!(EipList::PLAIN_ENTRY_BYTES, 16);
    let one = plain("192.0.2.1", "10.0.0.1");
    let mut with_limits = plain("192.0.2.2", "10.0.0.2");
    with_limits.set_limits(Some(super::super::spec::LimitsSpec {
        in_pps: Some(5),
        ..Default::default()
    }));
    let given = vec![
        one.clone(),
        with_limits.clone(),
        EipSpec::new("192.0.2.3".parse().unwrap(), "r", None),
        plain("2001:db8::1", "10.0.0.4"),
    ];
    let list = EipList::from(given.clone());
    assert!(is_plain(&list, "192.0.2.1"));
    assert!(!is_plain(&list, "192.0.2.2"), "limits: kept whole");
    assert!(!is_plain(&list, "192.0.2.3"), "no backend: kept whole");
    assert!(!is_plain(&list, "2001:db8::1"), "IPv6: kept whole");
    assert_eq!(*list.by_address(one.address).unwrap(), one);
    assert_eq!(*list.nth(1).unwrap(), with_limits);
    let brief: Vec<(IpAddr, String)> = list
        .addresses_and_regions()
        .map(|(a, r)| (a, r.to_string()))
        .collect();
    let whole: Vec<(IpAddr, String)> = given
        .iter()
        .map(|e| (e.address, e.region.to_string()))
        .collect();
    assert_eq!(brief, whole);
    // The same text as the list of whole entries it was made from.
    let whole = Whole { eips: given };
    let text = toml::to_string(&Wrapper { eips: list }).unwrap();
    assert_eq!(text, toml::to_string(&whole).unwrap());
}

#[test]
fn a_changed_eip_is_packed_again_when_still_plain() {
    let mut l = EipList::from(vec![plain("192.0.2.1", "10.0.0.1")]);
    let a = "192.0.2.1".parse().unwrap();
    l.by_address_mut(a).unwrap().backend = Some("10.0.0.9".parse().unwrap());
    assert!(is_plain(&l, "192.0.2.1"));
    assert_eq!(
        l.by_address(a).unwrap().backend,
        Some("10.0.0.9".parse().unwrap())
    );
    // Given a service it is kept whole; without it, plain again.
    let backend = pop::backend([10, 0, 0, 5], None, 1);
    let service = pop::service(Protocol::Tcp, 80, [backend]);
    l.by_address_mut(a).unwrap().services.push(service);
    assert!(!is_plain(&l, "192.0.2.1"));
    assert_eq!(l.by_address(a).unwrap().services.len(), 1);
    // A whole entry two versions share is copied before it changes.
    let before = l.clone();
    l.by_address_mut(a).unwrap().services[0].port = 81;
    assert_eq!(before.by_address(a).unwrap().services[0].port, 80);
    assert_eq!(l.by_address(a).unwrap().services[0].port, 81);
    l.by_address_mut(a).unwrap().services.clear();
    assert!(is_plain(&l, "192.0.2.1"));
    for mut e in l.iter_mut() {
        e.region = "s".into();
    }
    assert!(is_plain(&l, "192.0.2.1"));
    assert_eq!(l.by_address(a).unwrap().region, "s");
}

#[test]
fn a_duplicate_is_kept_and_found_after_the_first_goes() {
    let mut l = EipList::from(vec![eip("192.0.2.1"), eip("192.0.2.2"), eip("192.0.2.1")]);
    assert_eq!(l.len(), 3);
    assert_eq!(l.position("192.0.2.1".parse().unwrap()), Some(0));
    l.remove("192.0.2.1".parse().unwrap());
    assert_eq!(l.position("192.0.2.1".parse().unwrap()), Some(1));
    l.remove("192.0.2.1".parse().unwrap());
    assert!(!l.contains("192.0.2.1".parse().unwrap()));
    assert_eq!(addrs(&l), ["192.0.2.2"]);
}

#[test]
fn changes_are_told_apart_by_what_the_versions_do_not_share() {
    let base: EipList = (0..5000u32)
        .map(|i| eip(&std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string()))
        .collect();
    let a = |i: u32| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
    let mut next = base.clone();
    assert_eq!(next.changed_since(&base, 100), Some(vec![]));
    next.push(eip("192.0.2.9"));
    next.remove(a(7));
    next.by_address_mut(a(42)).unwrap().region = "other".into();
    // Looked at but unchanged: not reported.
    let _ = next.by_address_mut(a(43));
    let mut changed = next.changed_since(&base, 100).unwrap();
    changed.sort();
    let mut want = vec![a(7), a(42), "192.0.2.9".parse().unwrap()];
    want.sort();
    assert_eq!(changed, want);
    // A list rebuilt shares nothing: more than the limit.
    let rebuilt: EipList = next.iter().map(Cow::into_owned).collect();
    assert_eq!(rebuilt.changed_since(&base, 100), None);
    let everything = rebuilt.changed_since(&base, 1_000_000).unwrap();
    assert_eq!(everything.len(), 3, "{everything:?}");
}

#[test]
fn holes_are_squeezed_out() {
    let mut l: EipList = (0..200u32)
        .map(|i| eip(&std::net::Ipv4Addr::from(0xc000_0200 + i).to_string()))
        .collect();
    for i in 0..190u32 {
        l.remove(std::net::Ipv4Addr::from(0xc000_0200 + i).into());
    }
    assert_eq!(l.len(), 10);
    assert!(l.entries.len() <= 2 * l.len() + 64);
    assert!(l.entries.len() > l.len(), "holes left to walk over");
    // Holes are in no walk, and no writer reaches the one they share.
    assert_eq!(l.iter().count(), 10);
    assert_eq!(l.iter_mut().count(), 10);
    assert_eq!(l.addresses_and_regions().count(), 10);
    assert_eq!(l.nth(9).unwrap().address, IpAddr::from([192, 0, 2, 199]));
    assert_eq!(hole().address, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let a: IpAddr = std::net::Ipv4Addr::from(0xc000_0200 + 195).into();
    assert_eq!(l.by_address(a).unwrap().address, a);
    assert_eq!(l.position(a), Some(5));
}

#[test]
fn serialises_as_a_plain_list() {
    let l = EipList::from(vec![eip("192.0.2.1"), eip("2001:db8::1")]);
    let text = toml::to_string(&Wrapper { eips: l.clone() }).unwrap();
    assert_eq!(text.matches("[[eips]]").count(), 2, "{text}");
    let back: Wrapper = toml::from_str(&text).unwrap();
    assert_eq!(back.eips, l);
}

#[derive(Serialize, Deserialize)]
struct Wrapper {
    eips: EipList,
}

#[derive(Serialize)]
struct Whole {
    eips: Vec<EipSpec>,
}
