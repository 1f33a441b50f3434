//! The POP description tables are built from: plain data, deserialised from the
//! TOML configuration file and, later, edited through the control socket.
//!
//! Field-by-field documentation with a complete example: `docs/config.md`.

pub use super::acl::AclSpec;
pub use super::limits::LimitsSpec;
use super::region_name::RegionName;
pub use crate::protect::{Prefix, ProtectionSpec};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use thin_vec::ThinVec;

/// An Ethernet address, written `02:00:00:00:00:01` in configuration.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Parses `aa:bb:cc:dd:ee:ff` (or with `-`), case-insensitive.
    pub fn parse(text: &str) -> Option<MacAddr> {
        let mut out = [0u8; 6];
        let mut parts = text.split([':', '-']);
        for byte in out.iter_mut() {
            let part = parts.next()?;
            if part.len() != 2 {
                return None;
            }
            *byte = u8::from_str_radix(part, 16).ok()?;
        }
        parts.next().is_none().then_some(MacAddr(out))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        MacAddr::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid MAC address {text:?}: expected six hex pairs like 02:00:00:00:00:01"
            ))
        })
    }
}

/// The whole POP: everything a table snapshot is built from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PopSpec {
    pub pop: PopSection,
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    #[serde(default)]
    pub regions: Vec<RegionSpec>,
    #[serde(default)]
    pub paths: Vec<PathSpec>,
    /// A persistent list: versions share their entries (`super::eip_list`).
    #[serde(default)]
    pub eips: super::EipList,
    /// Default per-EIP rate limits (`[limits]`): each cap applies to every EIP
    /// that does not give its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsSpec>,
    /// Edge protection (`crate::protect`): on by default.
    #[serde(default, skip_serializing_if = "ProtectionSpec::is_default")]
    pub protection: ProtectionSpec,
    /// BGP announcements (`crate::bgp_spec`); the tables ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<crate::bgp_spec::BgpSpec>,
}

fn default_vxlan_port() -> u16 {
    4789
}
fn default_outer_ttl() -> u8 {
    64
}
fn default_mtu() -> u16 {
    1500
}
fn default_weight() -> u32 {
    1
}

/// Settings of this POP as a tunnel endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PopSection {
    /// Name shown in reports.
    pub name: String,
    /// Our VTEP address: outer source of encapsulated traffic, destination of returns.
    pub vtep: Ipv4Addr,
    /// Further local addresses on which returns are accepted (e.g. one per backbone link).
    #[serde(default)]
    pub extra_vteps: Vec<Ipv4Addr>,
    /// UDP destination port of VXLAN (RFC 7348: 4789).
    #[serde(default = "default_vxlan_port")]
    pub vxlan_port: u16,
    /// Source MAC of the inner Ethernet frames we put into the tunnel.
    pub inner_mac: MacAddr,
    /// TTL of the outer IPv4 header.
    #[serde(default = "default_outer_ttl")]
    pub outer_ttl: u8,
    /// Inner source address of path probes (ICMP echo carried in VXLAN exactly as
    /// data is). Returns addressed to it go to the control thread. No probes without it.
    #[serde(default)]
    pub probe_source: Option<Ipv4Addr>,
    /// Health check of every backend whose service or EIP names none
    /// (`crate::check_spec`). No checks without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_check: Option<crate::check_spec::CheckSpec>,
    /// Most EIPs this POP takes: `eipd run` sizes the XDP filter maps to it at
    /// start (its `--max-eips` overrides it). A description with more EIPs is
    /// refused. None: the daemon's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_eips: Option<u32>,
    /// A file of further EIPs, one JSON object per line (as `add_eip` takes
    /// it), for lists too long for TOML. The configuration loader reads it
    /// into `eips` and clears this: a loaded description holds the EIPs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eips_file: Option<std::path::PathBuf>,
}

/// What a port faces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortRole {
    /// Clients arrive here and decapsulated returns leave here.
    Internet,
    /// Tunnels to the regions leave and arrive here.
    Backbone,
    /// One-armed: both of the above on one interface.
    Both,
}

/// One network port of the POP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSpec {
    pub name: String,
    pub role: PortRole,
    /// Kernel interface name (used by `eipd run`; replay ignores it).
    #[serde(default)]
    pub interface: Option<String>,
    /// Our MAC address on this port (source MAC of what we send).
    pub mac: MacAddr,
    /// MAC of the next hop toward the Internet (on the port that faces it).
    #[serde(default)]
    pub gateway_mac: Option<MacAddr>,
    /// Address of that next hop: `eipd run` learns (and keeps refreshing) its MAC
    /// from the kernel's neighbour table when `gateway_mac` is not given.
    #[serde(default)]
    pub gateway: Option<IpAddr>,
}

/// A backend region: where a cluster lives, behind one tunnel endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionSpec {
    pub name: String,
    /// VXLAN network identifier of this region's tunnel (24 bits).
    pub vni: u32,
    /// The region's VTEP address: outer destination, and accepted source of returns.
    pub vtep: Ipv4Addr,
    /// Inner destination MAC: the MAC of the region's VXLAN device.
    pub inner_mac: MacAddr,
    /// Inner address in the region that answers ICMP echo (e.g. the address of its
    /// vxlan device): the target of path probes. Paths of a region without one are
    /// not probed.
    #[serde(default)]
    pub probe_target: Option<Ipv4Addr>,
}

/// Health of a backbone path, as the prober (or the operator) last set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PathState {
    /// Healthy: carries traffic.
    #[default]
    Up,
    /// Failing probes: carries traffic only if no path of the region is up.
    Down,
    /// Administratively disabled: never carries traffic.
    Disabled,
}

/// One way to reach a region across the backbone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathSpec {
    pub name: String,
    pub region: String,
    /// Name of the port the path leaves on.
    pub port: String,
    /// MAC of the next hop on that port.
    #[serde(default)]
    pub next_hop_mac: Option<MacAddr>,
    /// Address of the next hop: `eipd run` learns (and keeps refreshing) its MAC
    /// from the kernel's neighbour table when `next_hop_mac` is not given.
    #[serde(default)]
    pub next_hop: Option<Ipv4Addr>,
    /// Outer source address (default: `pop.vtep`).
    #[serde(default)]
    pub source: Option<Ipv4Addr>,
    /// Outer destination address (default: the region's `vtep`).
    #[serde(default)]
    pub destination: Option<Ipv4Addr>,
    /// Largest outer IPv4 packet the path carries, in bytes.
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    /// Share of the region's flows among its usable paths.
    #[serde(default = "default_weight")]
    pub weight: u32,
    #[serde(default)]
    pub state: PathState,
}

/// Transport protocol of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// IP protocol number.
    pub const fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }
}

/// An anycast EIP and where its traffic goes. What few EIPs have (limits,
/// a check, an access list) sits behind one pointer ([`EipExtras`]): the
/// entry is 64 bytes (80 with a pointer each). (The description's list keeps
/// a plain 1:1 IPv4 EIP in 16 bytes: `eip_list.rs`.) The region's name is one pointer to a name all EIPs of the
/// region share ([`RegionName`]; inline, it took 24 bytes).
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "EipSpecFields")]
pub struct EipSpec {
    pub address: IpAddr,
    pub region: RegionName,
    /// 1:1 target for all traffic no service matches (with no services: all traffic).
    pub backend: Option<IpAddr>,
    /// Port-level services spread over pools of backends (a `ThinVec`: one
    /// pointer, 16 bytes an EIP less than a `Vec`, as nearly every EIP has none).
    pub services: ThinVec<ServiceSpec>,
    /// Limits, check and access list, `None` when the EIP has none of them
    /// (read them with [`EipSpec::limits`], [`EipSpec::check`], [`EipSpec::acl`];
    /// the setters drop a box they empty, and equality reads through them).
    pub extras: Option<Box<EipExtras>>,
}

/// Equal when every field is, extras compared by what they hold (an empty
/// box is no extras).
impl PartialEq for EipSpec {
    fn eq(&self, o: &Self) -> bool {
        self.address == o.address
            && self.region == o.region
            && self.backend == o.backend
            && self.services == o.services
            && self.limits() == o.limits()
            && self.check() == o.check()
            && self.acl() == o.acl()
    }
}

/// What few EIPs have, behind [`EipSpec::extras`]. Each part is boxed too, so
/// that an EIP with one of them (an access list on every EIP of a POP, say)
/// pays for that one: 24 bytes and the part, not the three parts in place.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EipExtras {
    /// Rate limits of this EIP, over the POP's `[limits]` (`super::limits`).
    pub limits: Option<Box<LimitsSpec>>,
    /// Health check of the 1:1 backend, and of the services' backends that
    /// name none (default: `pop.backend_check`).
    pub check: Option<Box<crate::check_spec::CheckSpec>>,
    /// Access list of this EIP's ingress (`super::acl`); none: all allowed.
    pub acl: Option<Box<AclSpec>>,
}

impl EipExtras {
    fn is_empty(&self) -> bool {
        self.limits.is_none() && self.check.is_none() && self.acl.is_none()
    }
}

impl EipSpec {
    /// A 1:1 EIP (no services, limits, check or access list).
    pub fn new(address: IpAddr, region: impl Into<RegionName>, backend: Option<IpAddr>) -> Self {
        EipSpec {
            address,
            region: region.into(),
            backend,
            services: ThinVec::new(),
            extras: None,
        }
    }

    /// This EIP's rate limits, if it has its own.
    pub fn limits(&self) -> Option<&LimitsSpec> {
        self.extras.as_ref()?.limits.as_deref()
    }

    /// This EIP's backend health check, if it has its own.
    pub fn check(&self) -> Option<&crate::check_spec::CheckSpec> {
        self.extras.as_ref()?.check.as_deref()
    }

    /// This EIP's access list, if it has one.
    pub fn acl(&self) -> Option<&AclSpec> {
        self.extras.as_ref()?.acl.as_deref()
    }

    /// Replaces the rate limits (`None`: the POP's).
    pub fn set_limits(&mut self, limits: Option<LimitsSpec>) {
        self.edit_extras(|x| x.limits = limits.map(Box::new));
    }

    /// Replaces the backend health check (`None`: the POP's).
    pub fn set_check(&mut self, check: Option<crate::check_spec::CheckSpec>) {
        self.edit_extras(|x| x.check = check.map(Box::new));
    }

    /// Replaces the access list (`None`: all allowed).
    pub fn set_acl(&mut self, acl: Option<AclSpec>) {
        self.edit_extras(|x| x.acl = acl.map(Box::new));
    }

    fn edit_extras(&mut self, edit: impl FnOnce(&mut EipExtras)) {
        edit(self.extras.get_or_insert_with(Box::default));
        if self.extras.as_ref().is_some_and(|x| x.is_empty()) {
            self.extras = None;
        }
    }
}

/// An EIP as written (configuration, EIP list file, state file, control
/// socket): every field at the top level.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename = "EipSpec")]
struct EipSpecFields {
    address: IpAddr,
    region: RegionName,
    #[serde(default, alias = "default_backend")]
    backend: Option<IpAddr>,
    #[serde(default)]
    services: ThinVec<ServiceSpec>,
    #[serde(default)]
    limits: Option<Box<LimitsSpec>>,
    #[serde(default)]
    check: Option<Box<crate::check_spec::CheckSpec>>,
    #[serde(default)]
    acl: Option<Box<AclSpec>>,
}

impl From<EipSpecFields> for EipSpec {
    fn from(f: EipSpecFields) -> Self {
        let extras = EipExtras {
            limits: f.limits,
            check: f.check,
            acl: f.acl,
        };
        EipSpec {
            address: f.address,
            region: f.region,
            backend: f.backend,
            services: f.services,
            extras: (!extras.is_empty()).then(|| Box::new(extras)),
        }
    }
}

/// [`EipSpecFields`] by reference, for writing without a copy.
#[derive(Serialize)]
#[serde(rename = "EipSpec")]
struct EipSpecRef<'a> {
    address: &'a IpAddr,
    region: &'a RegionName,
    backend: &'a Option<IpAddr>,
    services: &'a ThinVec<ServiceSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limits: Option<&'a LimitsSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    check: Option<&'a crate::check_spec::CheckSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    acl: Option<&'a AclSpec>,
}

impl Serialize for EipSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        EipSpecRef {
            address: &self.address,
            region: &self.region,
            backend: &self.backend,
            services: &self.services,
            limits: self.limits(),
            check: self.check(),
            acl: self.acl(),
        }
        .serialize(s)
    }
}

/// A protocol/port of an EIP served by a pool of backends (Maglev).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    pub protocol: Protocol,
    pub port: u16,
    pub backends: Vec<BackendSpec>,
    /// Health check of the pool's backends (default: the EIP's, then the POP's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<crate::check_spec::CheckSpec>,
}

/// One member of a service's pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendSpec {
    pub address: IpAddr,
    /// Port on the backend (default: the service's port).
    #[serde(default)]
    pub port: Option<u16>,
    /// Share of the service's flows; 0 drains the backend (no new flows).
    #[serde(default = "default_weight")]
    pub weight: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parses_and_prints() {
        let m = MacAddr::parse("02:AB:cd:00:00:01").unwrap();
        assert_eq!(m.0, [2, 0xab, 0xcd, 0, 0, 1]);
        assert_eq!(m.to_string(), "02:ab:cd:00:00:01");
        assert_eq!(MacAddr::parse("02-ab-cd-00-00-01"), Some(m));
        for bad in [
            "",
            "02:ab:cd:00:00",
            "02:ab:cd:00:00:01:02",
            "2:ab:cd:00:00:01",
            "zz:ab:cd:00:00:01",
        ] {
            assert_eq!(MacAddr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_eip_is_written_as_read_with_its_extras_at_the_top_level() {
        let text = r#"address = "192.0.2.20"
region = "beijing"
default_backend = "10.1.0.20"
limits = { in_pps = 100 }
acl = { default = "deny", rules = [] }
"#;
        let e: EipSpec = toml::from_str(text).unwrap();
        assert_eq!(e.limits().and_then(|l| l.in_pps), Some(100));
        assert!(e.acl().is_some() && e.check().is_none());
        let written = toml::to_string(&e).unwrap();
        assert!(
            !written.contains("extras") && !written.contains("check"),
            "{written}"
        );
        assert_eq!(toml::from_str::<EipSpec>(&written).unwrap(), e);
        // Unknown fields are refused as before.
        let err = toml::from_str::<EipSpec>(&format!("{text}extras = 1\n")).unwrap_err();
        assert!(err.to_string().contains("unknown field `extras`"), "{err}");
    }

    #[test]
    fn an_eip_without_extras_holds_no_box() {
        let mut e = EipSpec::new("192.0.2.20".parse().unwrap(), "beijing", None);
        assert!(e.extras.is_none());
        e.set_limits(Some(LimitsSpec {
            in_pps: Some(1),
            ..Default::default()
        }));
        assert!(e.extras.is_some());
        e.set_limits(None);
        assert!(e.extras.is_none(), "emptied extras are dropped");
        assert_eq!(std::mem::size_of::<EipSpec>(), 64);
        // Equality reads through the box: an empty one is none.
        let mut boxed = e.clone();
        boxed.extras = Some(Box::default());
        assert_eq!(boxed, e);
        boxed.set_acl(Some(AclSpec {
            default: super::super::acl::AclAction::Deny,
            rules: Vec::new(),
        }));
        assert_ne!(boxed, e);
    }
}
