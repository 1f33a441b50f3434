//! `show acl`: an EIP's rules in order with their hits, the default last.

use eip_dataplane::tables::spec::AclSpec;
use std::fmt::Write;
use std::net::IpAddr;

/// The list as a table; `hits` per rule and the default (empty: unknown).
pub fn acl(address: IpAddr, acl: Option<&AclSpec>, hits: &[u64]) -> String {
    let Some(acl) = acl else {
        return format!("{address} has no access list: all traffic is allowed\n");
    };
    let hit = |i: usize| hits.get(i).map_or("-".to_string(), |h| h.to_string());
    let mut out = format!(
        "access list of {address}: {} rule{}, first match wins\n",
        acl.rules.len(),
        if acl.rules.len() == 1 { "" } else { "s" }
    );
    let _ = writeln!(
        out,
        "{:>5}  {:<6}  {:<43}  {:<8}  {:<11}  {:>12}",
        "RULE", "ACTION", "SOURCE", "PROTOCOL", "PORTS", "HITS"
    );
    let any = || "any".to_string();
    for (i, r) in acl.rules.iter().enumerate() {
        let _ = writeln!(
            out,
            "{:>5}  {:<6}  {:<43}  {:<8}  {:<11}  {:>12}",
            i,
            r.action.label(),
            r.source.map_or_else(any, |p| p.to_string()),
            r.protocol.map_or_else(any, |p| p.to_string()),
            r.ports.map_or_else(any, |p| p.to_string()),
            hit(i),
        );
    }
    let _ = writeln!(
        out,
        "{:>5}  {:<6}  {:<43}  {:<8}  {:<11}  {:>12}",
        "-",
        acl.default.label(),
        "(default: no rule matched)",
        "",
        "",
        hit(acl.rules.len()),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_in_order_with_hits_and_the_default() {
        let spec: AclSpec = toml::from_str(
            r#"default = "deny"
rules = [{ action = "allow", source = "198.51.100.0/24", protocol = "udp", ports = "1000-2000" }]"#,
        )
        .unwrap();
        let a: IpAddr = "192.0.2.10".parse().unwrap();
        let text = acl(a, Some(&spec), &[7, 3]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("192.0.2.10: 1 rule,"), "{text}");
        let row: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            row,
            ["0", "allow", "198.51.100.0/24", "udp", "1000-2000", "7"]
        );
        let default: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(default.first(), Some(&"-"));
        assert_eq!(default.get(1), Some(&"deny"));
        assert_eq!(default.last(), Some(&"3"));
        assert!(acl(a, Some(&spec), &[])
            .lines()
            .nth(2)
            .unwrap()
            .ends_with('-'));
        assert!(acl(a, None, &[]).contains("no access list"));
    }
}
