//! The XDP filter program: loading, attaching, and keeping its maps in sync with
//! the forwarding tables.
//!
//! One program instance (one set of maps) serves every port: the `ports` map gives
//! each ingress ifindex a slot and says what that port accepts, and the XSKMAP is
//! keyed by `slot * queues_per_port + rx_queue_index`. The C source is
//! `crates/eip-afxdp/bpf/eip_xdp.c`; constants here must match it.
//!
//! Lifetime: the [`aya::Ebpf`] object owns the program and its links. Dropping
//! [`XdpFilter`] detaches the program from every interface. The links are
//! `bpf_link`s, which the kernel also releases when the process dies, even on
//! `kill -9`, so a crashed data plane never leaves a filter diverting traffic into
//! sockets nobody reads (the veth test checks this). Caveat: on kernels without
//! XDP `bpf_link` support (before 5.9) aya falls back to a netlink attachment,
//! which outlives the process; there `ip link set dev X xdp off` cleans up.
//!
//! Why one file: the program's maps, their sizing and their sync are one
//! contract with `eip_xdp.c`; the access-list tries and the rate caps, which
//! only add entries to it, are in `program/acl.rs` and `program/limits.rs`.

mod acl;
mod batch;
mod keyset;
mod limits;

pub use acl::AclEntry;
pub use limits::{CapsEntry, XdpCaps, CAP_INHERIT, XDP_MAX_RATE};

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::RawFd;

use aya::maps::{Array, HashMap, LpmTrie, MapData, MapError, PerCpuArray, XskMap};
use aya::programs::{ProgramError, Xdp};
use aya::{Ebpf, EbpfLoader, Pod};
use keyset::KeySet;

use super::config::{Accept, XdpMode, XdpModePreference};
use super::error::{errno_of, SetupError};

/// The compiled filter, built from `bpf/eip_xdp.c` by build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/eip_xdp.o"));

const PROGRAM: &str = "eip_filter";
const ACCEPT_EIP: u32 = 1;
const ACCEPT_VTEP: u32 = 2;
/// Entries of each access-list trie (allocated as used: `BPF_F_NO_PREALLOC`);
/// their drop counters (`acl_hits`, per CPU, allocated up front) take 8 bytes
/// per entry of both tries per CPU: 1 MiB per CPU.
const MAX_ACL_PREFIXES: u32 = 1 << 16;
/// `filter_config.acl` bit: some EIP may be capped (the program looks then).
const RATE_CAPS: u16 = 4;
/// (EIP, queue) token buckets the program keeps (an LRU: EIPs receiving
/// traffic stay, a bucket evicted starts full again).
const MAX_RATE_BUCKETS: u32 = 1 << 16;

/// `struct port_info` in the C program.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct PortInfo {
    slot: u32,
    accept: u32,
}

/// `struct filter_config` in the C program.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FilterConfig {
    queues_per_port: u32,
    vxlan_port_be: u16,
    /// Which access-list tries hold entries (`acl::ACL_V4`, `acl::ACL_V6`)
    /// and whether any EIP may be capped ([`RATE_CAPS`]).
    acl: u16,
    /// The POP's default inbound caps (0: none).
    default_bps: u64,
    default_pps: u64,
}

// SAFETY: both are `repr(C)` structs of plain integers with no padding (checked
// below), so every bit pattern is valid and they can be copied to/from the kernel.
unsafe impl Pod for PortInfo {}
// SAFETY: as above.
unsafe impl Pod for FilterConfig {}
const _: () = assert!(std::mem::size_of::<PortInfo>() == 8);
const _: () = assert!(std::mem::size_of::<FilterConfig>() == 24);

/// What the XDP program counted (summed over CPUs). Only the program's own
/// decisions; AF_XDP socket drops are in the socket statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilterStats {
    /// Passed to the kernel: not addressed to an EIP or VTEP.
    pub pass_not_ours: u64,
    /// Passed: arrived on an interface the program has no slot for.
    pub pass_unknown_port: u64,
    /// Passed: too short to parse.
    pub pass_short: u64,
    /// Redirected: IPv4 to an EIP.
    pub redirect_eip_v4: u64,
    /// Redirected: IPv6 to an EIP.
    pub redirect_eip_v6: u64,
    /// Redirected: VXLAN to a local VTEP.
    pub redirect_vtep: u64,
    /// Ours, but no socket bound for the receiving queue: passed to the kernel.
    /// Non-zero means a queue has no worker.
    pub no_socket: u64,
    /// Dropped: the source is denied outright by the EIP's access list.
    pub drop_acl: u64,
    /// Dropped: over the EIP's inbound rate cap.
    pub drop_rate: u64,
}

/// Where the filter maps get their contents: the forwarding tables. The lead's
/// `Tables` implements this with its `eip_v4_addresses()` & co.
pub trait FilterSource {
    /// All IPv4 EIPs.
    fn eip_v4(&self) -> impl Iterator<Item = Ipv4Addr> + '_;
    /// All IPv6 EIPs.
    fn eip_v6(&self) -> impl Iterator<Item = Ipv6Addr> + '_;
    /// Local IPv4 VTEP addresses (VXLAN to these is ours).
    fn local_vteps(&self) -> impl Iterator<Item = Ipv4Addr> + '_;
    /// (EIP, source prefix) pairs to drop before the redirect.
    fn acl_denies(&self) -> impl Iterator<Item = AclEntry> + '_ {
        std::iter::empty()
    }
    /// EIPs with inbound caps of their own.
    fn rate_caps(&self) -> impl Iterator<Item = CapsEntry> + '_ {
        std::iter::empty()
    }
    /// The POP's default inbound caps (no [`CAP_INHERIT`] in them).
    fn default_caps(&self) -> XdpCaps {
        XdpCaps::NONE
    }
}

/// Keys to insert into and remove from the filter maps: what changed between
/// two table snapshots, so that an update costs what it changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterDelta {
    pub add_v4: Vec<Ipv4Addr>,
    pub remove_v4: Vec<Ipv4Addr>,
    pub add_v6: Vec<Ipv6Addr>,
    pub remove_v6: Vec<Ipv6Addr>,
    pub add_vteps: Vec<Ipv4Addr>,
    pub remove_vteps: Vec<Ipv4Addr>,
    /// Access-list prefixes to drop in XDP, and those no longer.
    pub add_acl: Vec<AclEntry>,
    pub remove_acl: Vec<AclEntry>,
    /// Prefixes kept whose EIP's list changed: their drop counts restart
    /// (a new list counts from zero), after the swap.
    pub reset_acl: Vec<AclEntry>,
    /// EIPs whose own caps are new or changed, and those that have none any more.
    pub set_caps: Vec<CapsEntry>,
    pub remove_caps: Vec<IpAddr>,
    /// The POP default caps, when they changed.
    pub default_caps: Option<XdpCaps>,
}

impl FilterDelta {
    /// Nothing to insert or remove.
    pub fn is_empty(&self) -> bool {
        self.add_v4.is_empty()
            && self.remove_v4.is_empty()
            && self.add_v6.is_empty()
            && self.remove_v6.is_empty()
            && self.add_vteps.is_empty()
            && self.remove_vteps.is_empty()
            && self.add_acl.is_empty()
            && self.remove_acl.is_empty()
            && self.reset_acl.is_empty()
            && self.set_caps.is_empty()
            && self.remove_caps.is_empty()
            && self.default_caps.is_none()
    }
}

/// Changes one [`XdpFilter::sync_maps`] made to one map.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MapDiff {
    /// Keys inserted.
    pub added: usize,
    /// Stale keys removed.
    pub removed: usize,
    /// Keys in the map afterwards.
    pub total: usize,
}

/// Result of [`XdpFilter::sync_maps`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// `eip_v4` map.
    pub eip_v4: MapDiff,
    /// `eip_v6` map.
    pub eip_v6: MapDiff,
    /// `vtep_v4` map.
    pub vtep_v4: MapDiff,
    /// `acl_v4` and `acl_v6` tries together.
    pub acl: MapDiff,
    /// `rate_caps` ("added": entries written, new or changed).
    pub caps: MapDiff,
}

/// An interface the program is attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Interface name.
    pub interface: String,
    /// Mode obtained.
    pub mode: XdpMode,
}

/// The loaded filter program and its maps.
pub struct XdpFilter {
    ports: HashMap<MapData, u32, PortInfo>,
    xsks: XskMap<MapData>,
    stats: PerCpuArray<MapData, u64>,
    eip_v4: KeySet<u32>,
    eip_v6: KeySet<[u8; 16]>,
    vtep_v4: KeySet<u32>,
    acl_v4: acl::Trie<8>,
    acl_v6: acl::Trie<32>,
    acl_hits: acl::Hits,
    caps: limits::CapsMap,
    config: Array<MapData, FilterConfig>,
    /// What `config` holds.
    filter_config: FilterConfig,
    queues_per_port: u32,
    attached: Vec<Attachment>,
    // Last: dropping it detaches the program from every interface.
    ebpf: Ebpf,
}

/// Sizing and constants for [`XdpFilter::load`].
#[derive(Debug, Clone, Copy)]
pub struct FilterSizes {
    /// Ports (XSKMAP slots).
    pub ports: u32,
    /// Highest queue id served + 1.
    pub queues_per_port: u32,
    /// Capacity of each EIP map.
    pub max_eips: u32,
    /// Capacity of the VTEP map.
    pub max_vteps: u32,
    /// VXLAN UDP port.
    pub vxlan_port: u16,
}

fn load_error(e: impl std::error::Error + Send + Sync + 'static) -> SetupError {
    match errno_of(&e) {
        Some(code @ (libc::EPERM | libc::EACCES)) => SetupError::PermissionDenied {
            action: "loading the XDP filter program and its maps".into(),
            source: std::io::Error::from_raw_os_error(code),
        },
        _ => SetupError::XdpLoad {
            source: Box::new(e),
        },
    }
}

fn take_map<T>(
    ebpf: &mut Ebpf,
    name: &'static str,
    convert: impl FnOnce(aya::maps::Map) -> Result<T, MapError>,
) -> Result<T, SetupError> {
    let map = ebpf.take_map(name).ok_or_else(|| SetupError::Map {
        map: name,
        what: "missing from the embedded object (build.rs / eip_xdp.c out of sync)".into(),
        source: None,
    })?;
    convert(map).map_err(|e| SetupError::Map {
        map: name,
        what: "unexpected type".into(),
        source: Some(e),
    })
}

impl XdpFilter {
    /// Loads the program into the kernel with maps sized from `sizes`. Nothing is
    /// attached yet.
    ///
    /// # Errors
    /// [`SetupError::PermissionDenied`] without CAP_BPF/CAP_NET_ADMIN,
    /// [`SetupError::XdpLoad`] if the verifier rejects the program.
    pub fn load(sizes: FilterSizes) -> Result<Self, SetupError> {
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("eip_v4", sizes.max_eips)
            .map_max_entries("eip_v6", sizes.max_eips)
            .map_max_entries("vtep_v4", sizes.max_vteps)
            .map_max_entries("xsks", sizes.ports * sizes.queues_per_port)
            .map_max_entries("acl_v4", MAX_ACL_PREFIXES)
            .map_max_entries("acl_v6", MAX_ACL_PREFIXES)
            .map_max_entries("acl_hits", 2 * MAX_ACL_PREFIXES)
            .map_max_entries("rate_caps", sizes.max_eips)
            .map_max_entries("rate_buckets", MAX_RATE_BUCKETS)
            .load(OBJECT)
            .map_err(load_error)?;
        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM)
            .ok_or_else(|| SetupError::XdpLoad {
                source: format!("no program `{PROGRAM}` in the object").into(),
            })?
            .try_into()
            .map_err(load_error)?;
        program.load().map_err(load_error)?;

        let mut config: Array<MapData, FilterConfig> =
            take_map(&mut ebpf, "config", Array::try_from)?;
        let filter_config = FilterConfig {
            queues_per_port: sizes.queues_per_port,
            vxlan_port_be: sizes.vxlan_port.to_be(),
            acl: 0,
            default_bps: 0,
            default_pps: 0,
        };
        config
            .set(0, filter_config, 0)
            .map_err(|e| SetupError::Map {
                map: "config",
                what: "writing".into(),
                source: Some(e),
            })?;

        Ok(XdpFilter {
            ports: take_map(&mut ebpf, "ports", HashMap::try_from)?,
            xsks: take_map(&mut ebpf, "xsks", XskMap::try_from)?,
            stats: take_map(&mut ebpf, "stats", PerCpuArray::try_from)?,
            eip_v4: KeySet::take(&mut ebpf, "eip_v4", sizes.max_eips)?,
            eip_v6: KeySet::take(&mut ebpf, "eip_v6", sizes.max_eips)?,
            vtep_v4: KeySet::take(&mut ebpf, "vtep_v4", sizes.max_vteps)?,
            acl_v4: acl::Trie::new(
                "acl_v4",
                take_map(&mut ebpf, "acl_v4", LpmTrie::try_from)?,
                MAX_ACL_PREFIXES,
                0,
            ),
            acl_v6: acl::Trie::new(
                "acl_v6",
                take_map(&mut ebpf, "acl_v6", LpmTrie::try_from)?,
                MAX_ACL_PREFIXES,
                MAX_ACL_PREFIXES,
            ),
            acl_hits: take_map(&mut ebpf, "acl_hits", PerCpuArray::try_from)?,
            caps: limits::CapsMap::new(
                take_map(&mut ebpf, "rate_caps", HashMap::try_from)?,
                sizes.max_eips,
            ),
            config,
            filter_config,
            queues_per_port: sizes.queues_per_port,
            attached: Vec::new(),
            ebpf,
        })
    }

    /// Declares interface `ifindex` as port `slot` accepting `accept`. Must precede
    /// [`Self::attach`] so that the first packet already finds its port.
    pub fn add_port(&mut self, ifindex: u32, slot: u32, accept: Accept) -> Result<(), SetupError> {
        let info = PortInfo {
            slot,
            accept: if accept.eip { ACCEPT_EIP } else { 0 }
                | if accept.vtep { ACCEPT_VTEP } else { 0 },
        };
        self.ports
            .insert(ifindex, info, 0)
            .map_err(|e| SetupError::Map {
                map: "ports",
                what: format!("adding ifindex {ifindex}"),
                source: Some(e),
            })
    }

    /// Makes the socket `fd` receive what the program diverts on port `slot`, queue `queue`.
    pub fn register_socket(&mut self, slot: u32, queue: u32, fd: RawFd) -> Result<(), SetupError> {
        let key = slot * self.queues_per_port + queue;
        self.xsks.set(key, fd, 0).map_err(|e| SetupError::Map {
            map: "xsks",
            what: format!("registering the socket of port slot {slot} queue {queue}"),
            source: Some(e),
        })
    }

    /// Attaches the program to `interface`, trying native mode first when
    /// `preference` allows, and returns the mode obtained.
    pub fn attach(
        &mut self,
        interface: &str,
        ifindex: u32,
        preference: XdpModePreference,
    ) -> Result<XdpMode, SetupError> {
        let modes: &[XdpMode] = match preference {
            XdpModePreference::Auto => &[XdpMode::Driver, XdpMode::Skb],
            XdpModePreference::Driver => &[XdpMode::Driver],
            XdpModePreference::Skb => &[XdpMode::Skb],
        };
        let program: &mut Xdp = self
            .ebpf
            .program_mut(PROGRAM)
            .expect("program present: checked at load")
            .try_into()
            .expect("program type: checked at load");
        let mut last = None;
        for &mode in modes {
            let aya_mode = match mode {
                XdpMode::Driver => aya::programs::XdpMode::Driver,
                XdpMode::Skb => aya::programs::XdpMode::Skb,
            };
            match program.attach_to_if_index(ifindex, aya_mode) {
                Ok(_link) => {
                    // The link stays owned by the program (and thus by `self.ebpf`).
                    self.attached.push(Attachment {
                        interface: interface.to_string(),
                        mode,
                    });
                    return Ok(mode);
                }
                Err(source) => {
                    let errno = errno_of(&source);
                    // Permission problems do not get better in another mode.
                    if let Some(code @ (libc::EPERM | libc::EACCES)) = errno {
                        return Err(SetupError::PermissionDenied {
                            action: format!("attaching XDP to `{interface}`"),
                            source: std::io::Error::from_raw_os_error(code),
                        });
                    }
                    last = Some(attach_error(interface, mode, errno, source));
                }
            }
        }
        Err(last.expect("at least one mode tried"))
    }

    /// Interfaces the program is attached to, and in which mode.
    pub fn attachments(&self) -> &[Attachment] {
        &self.attached
    }

    /// Makes the EIP and VTEP maps hold exactly what `source` lists: inserts
    /// missing keys and removes stale ones. Syscalls are issued only for the
    /// difference against what this filter installed before.
    ///
    /// Call from the control thread after each table swap. Not atomic across keys:
    /// during a sync a packet may see the old or new membership of a key being
    /// changed, never a corrupted map.
    pub fn sync_maps<S: FilterSource + ?Sized>(
        &mut self,
        source: &S,
    ) -> Result<SyncReport, SetupError> {
        let acl: Vec<AclEntry> = source.acl_denies().collect();
        let (a4, r4) = self.acl_v4.sync(&acl, &mut self.acl_hits)?;
        let (a6, r6) = self.acl_v6.sync(&acl, &mut self.acl_hits)?;
        let (added, removed) = (a4 + a6, r4 + r6);
        let caps: Vec<CapsEntry> = source.rate_caps().collect();
        let (cw, cr) = self.caps.sync(&caps)?;
        self.write_flags(Some(source.default_caps()))?;
        Ok(SyncReport {
            acl: self.acl_diff(added, removed),
            caps: self.caps_diff(cw, cr),
            eip_v4: self
                .eip_v4
                .sync(source.eip_v4().map(|a| u32::from_ne_bytes(a.octets())))?,
            eip_v6: self.eip_v6.sync(source.eip_v6().map(|a| a.octets()))?,
            vtep_v4: self
                .vtep_v4
                .sync(source.local_vteps().map(|a| u32::from_ne_bytes(a.octets())))?,
        })
    }

    /// Inserts the delta's `add_*` keys (widening: before a swap). Refuses,
    /// before inserting any into that map, keys that would not fit.
    ///
    /// # Errors
    /// A map that is full or refuses a key.
    pub fn insert_keys(&mut self, delta: &FilterDelta) -> Result<SyncReport, SetupError> {
        let v4 = |a: &Ipv4Addr| u32::from_ne_bytes(a.octets());
        let a4 = self.eip_v4.insert_all(delta.add_v4.iter().map(v4))?;
        let a6 = self
            .eip_v6
            .insert_all(delta.add_v6.iter().map(|a| a.octets()))?;
        let av = self.vtep_v4.insert_all(delta.add_vteps.iter().map(v4))?;
        let aa = self.acl_v4.insert_all(&delta.add_acl, &mut self.acl_hits)?
            + self.acl_v6.insert_all(&delta.add_acl, &mut self.acl_hits)?;
        let cw = self.caps.set_all(&delta.set_caps)?;
        self.write_flags(delta.default_caps)?;
        Ok(SyncReport {
            acl: self.acl_diff(aa, 0),
            caps: self.caps_diff(cw, 0),
            eip_v4: self.eip_v4.diff(a4, 0),
            eip_v6: self.eip_v6.diff(a6, 0),
            vtep_v4: self.vtep_v4.diff(av, 0),
        })
    }

    /// Removes the delta's `remove_*` keys (narrowing: after a swap).
    ///
    /// # Errors
    /// A map that refuses a removal.
    pub fn remove_keys(&mut self, delta: &FilterDelta) -> Result<SyncReport, SetupError> {
        let v4 = |a: &Ipv4Addr| u32::from_ne_bytes(a.octets());
        let r4 = self.eip_v4.remove_all(delta.remove_v4.iter().map(v4))?;
        let r6 = self
            .eip_v6
            .remove_all(delta.remove_v6.iter().map(|a| a.octets()))?;
        let rv = self.vtep_v4.remove_all(delta.remove_vteps.iter().map(v4))?;
        let ra = self.acl_v4.remove_all(&delta.remove_acl)?
            + self.acl_v6.remove_all(&delta.remove_acl)?;
        self.acl_v4.reset(&delta.reset_acl, &mut self.acl_hits)?;
        self.acl_v6.reset(&delta.reset_acl, &mut self.acl_hits)?;
        let cr = self.caps.remove_all(&delta.remove_caps)?;
        self.write_flags(None)?;
        Ok(SyncReport {
            acl: self.acl_diff(0, ra),
            caps: self.caps_diff(0, cr),
            eip_v4: self.eip_v4.diff(0, r4),
            eip_v6: self.eip_v6.diff(0, r6),
            vtep_v4: self.vtep_v4.diff(0, rv),
        })
    }

    /// Keys in the kernel's `eip_v4`, `eip_v6` and `vtep_v4` maps, read back
    /// (tests: the counts must say what the kernel holds).
    #[cfg(test)]
    pub(crate) fn kernel_key_counts(&self) -> (usize, usize, usize) {
        (
            self.eip_v4.kernel_len(),
            self.eip_v6.kernel_len(),
            self.vtep_v4.kernel_len(),
        )
    }

    /// Whether the `eip_v4` map still goes in batches (tests).
    #[cfg(test)]
    pub(crate) fn eip_v4_batches(&self) -> bool {
        self.eip_v4.batches()
    }

    /// Deletes an IPv4 EIP from the kernel's map only (tests).
    #[cfg(test)]
    pub(crate) fn delete_eip_v4_behind_our_back(&mut self, eip: Ipv4Addr) {
        self.eip_v4
            .delete_behind_our_back(&u32::from_ne_bytes(eip.octets()));
    }

    /// The program's counters, summed over CPUs.
    pub fn stats(&self) -> Result<FilterStats, SetupError> {
        let mut v = [0u64; 9];
        for (i, slot) in v.iter_mut().enumerate() {
            let per_cpu = self
                .stats
                .get(&(i as u32), 0)
                .map_err(|e| SetupError::Map {
                    map: "stats",
                    what: "reading".into(),
                    source: Some(e),
                })?;
            *slot = per_cpu.iter().sum();
        }
        Ok(FilterStats {
            pass_not_ours: v[0],
            pass_unknown_port: v[1],
            pass_short: v[2],
            redirect_eip_v4: v[3],
            redirect_eip_v6: v[4],
            redirect_vtep: v[5],
            no_socket: v[6],
            drop_acl: v[7],
            drop_rate: v[8],
        })
    }

    fn acl_diff(&self, added: usize, removed: usize) -> MapDiff {
        MapDiff {
            added,
            removed,
            total: self.acl_v4.len() + self.acl_v6.len(),
        }
    }

    /// Drops per access-list entry (EIP, source prefix), since the entry was
    /// inserted or its EIP's list last changed: one read per entry (none
    /// while the tries are empty).
    pub fn acl_hits(&self) -> Result<Vec<(AclEntry, u64)>, SetupError> {
        let mut all = self.acl_v4.hits(&self.acl_hits)?;
        all.extend(self.acl_v6.hits(&self.acl_hits)?);
        Ok(all)
    }

    fn caps_diff(&self, added: usize, removed: usize) -> MapDiff {
        MapDiff {
            added,
            removed,
            total: self.caps.len(),
        }
    }

    /// Tells the program which tries to look up (none while both are empty,
    /// so EIPs without XDP denies pay no lookup), whether to look for rate
    /// caps (none while no EIP has its own and the POP default caps nothing),
    /// and the POP default (`default`, when it changes). Written after an
    /// insert and after a removal: a map is looked up before its first entry
    /// is needed and until after its last is gone.
    fn write_flags(&mut self, default: Option<XdpCaps>) -> Result<(), SetupError> {
        let default = default.map_or(
            XdpCaps {
                bps: self.filter_config.default_bps,
                pps: self.filter_config.default_pps,
            },
            |d| {
                XdpCaps {
                    bps: if d.bps == CAP_INHERIT { 0 } else { d.bps },
                    pps: if d.pps == CAP_INHERIT { 0 } else { d.pps },
                }
                .clamped()
            },
        );
        let capped = if self.caps.len() > 0 || default.any() {
            RATE_CAPS
        } else {
            0
        };
        let flags = capped
            | if self.acl_v4.is_empty() {
                0
            } else {
                acl::ACL_V4
            }
            | if self.acl_v6.is_empty() {
                0
            } else {
                acl::ACL_V6
            };
        let new = FilterConfig {
            acl: flags,
            default_bps: default.bps,
            default_pps: default.pps,
            ..self.filter_config
        };
        if new == self.filter_config {
            return Ok(());
        }
        self.config.set(0, new, 0).map_err(|e| SetupError::Map {
            map: "config",
            what: "writing".into(),
            source: Some(e),
        })?;
        self.filter_config = new;
        Ok(())
    }
}

fn attach_error(
    interface: &str,
    mode: XdpMode,
    errno: Option<i32>,
    source: ProgramError,
) -> SetupError {
    SetupError::XdpAttach {
        interface: interface.to_string(),
        mode,
        errno,
        source,
    }
}

impl std::fmt::Debug for XdpFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpFilter")
            .field("attached", &self.attached)
            .field("queues_per_port", &self.queues_per_port)
            .field("eip_v4", &self.eip_v4.len())
            .field("eip_v6", &self.eip_v6.len())
            .field("vtep_v4", &self.vtep_v4.len())
            .finish_non_exhaustive()
    }
}

impl FilterSource for eip_dataplane::Tables {
    fn eip_v4(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.eip_v4_addresses()
    }
    fn eip_v6(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        self.eip_v6_addresses()
    }
    fn local_vteps(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.local_vteps.iter().copied()
    }
    fn acl_denies(&self) -> impl Iterator<Item = AclEntry> + '_ {
        self.xdp_acl_denies()
    }
    fn rate_caps(&self) -> impl Iterator<Item = CapsEntry> + '_ {
        self.inbound_caps()
            .map(|(eip, [bps, pps])| (eip, XdpCaps { bps, pps }))
    }
    fn default_caps(&self) -> XdpCaps {
        let [bps, pps] = self.default_inbound_caps();
        XdpCaps { bps, pps }
    }
}
