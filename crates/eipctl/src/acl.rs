//! `eipctl acl`: an EIP's access list from a TOML file or inline text, read
//! and checked here before anything is sent (the daemon checks again).

use anyhow::{bail, Context, Result};
use eip_dataplane::tables::spec::AclSpec;
use std::net::IpAddr;
use std::path::Path;

/// The list `eipctl acl ADDRESS` asks for: from `file`, from `inline` TOML
/// (`default = "deny", rules = [...]` or only the `rules = [...]`), or none
/// with `clear`. Exactly one of the three.
///
/// # Errors
/// None or several given, an unreadable file, or a list that does not parse
/// or validate: the message names the EIP and the rule (`rules[i]`).
pub fn spec(
    address: IpAddr,
    file: Option<&Path>,
    inline: Option<&str>,
    clear: bool,
) -> Result<Option<AclSpec>> {
    let text = match (file, inline, clear) {
        (Some(f), None, false) => {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        }
        (None, Some(t), false) => t.to_string(),
        (None, None, true) => return Ok(None),
        _ => bail!("give exactly one of --file, --rules or --clear"),
    };
    let acl: AclSpec =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("EIP {address}: acl: {e}"))?;
    acl.validate()
        .map_err(|e| anyhow::anyhow!("EIP {address}: acl: {e}"))?;
    Ok(Some(acl))
}

#[cfg(test)]
mod tests {
    use super::*;
    use eip_dataplane::tables::acl::AclAction;

    fn eip() -> IpAddr {
        "192.0.2.10".parse().unwrap()
    }

    #[test]
    fn inline_file_and_clear() {
        let inline = r#"default = "deny"
rules = [{ action = "allow", source = "198.51.100.0/24", protocol = "udp", ports = "1000-2000" }]"#;
        let a = spec(eip(), None, Some(inline), false).unwrap().unwrap();
        assert_eq!((a.default, a.rules.len()), (AclAction::Deny, 1));
        let dir = std::env::temp_dir().join(format!("eipctl-acl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("rules.toml");
        std::fs::write(&f, inline).unwrap();
        assert_eq!(spec(eip(), Some(&f), None, false).unwrap(), Some(a));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(spec(eip(), None, None, true).unwrap(), None);
    }

    #[test]
    fn bad_input_names_the_eip_and_rule() {
        let e = spec(
            eip(),
            None,
            Some(r#"rules = [{ action = "deny" }, { action = "deny", ports = "9-1" }]"#),
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("192.0.2.10") && e.contains("rules[1]") && e.contains("lo <= hi"),
            "{e}"
        );
        let e = spec(eip(), None, None, false).unwrap_err().to_string();
        assert!(e.contains("exactly one"), "{e}");
        let e = spec(eip(), None, Some("x"), true).unwrap_err().to_string();
        assert!(e.contains("exactly one"), "{e}");
    }
}
