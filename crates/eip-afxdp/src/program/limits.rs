//! The XDP program's rate caps (`rate_caps`: an EIP's own inbound caps; the
//! POP default rides in `filter_config`): what lets the program drop a flood
//! over an EIP's cap before it is copied into user space. The buckets
//! themselves (`rate_buckets`) belong to the program alone. A user-space
//! mirror makes a change issue syscalls only for the entries that differ.

use std::net::IpAddr;

use aya::maps::{HashMap, MapData, MapError};
use aya::Pod;
use rustc_hash::FxHashMap;

use super::super::error::{errno_of, SetupError};

/// The highest rate (bits or packets per second) the program polices: above
/// it the product `rate * burst` of its arithmetic could overflow, and such a
/// cap is left to the workers (written as none).
pub const XDP_MAX_RATE: u64 = 100_000_000_000;

/// A cap the EIP leaves to the POP default (`CAP_INHERIT` in the program).
pub const CAP_INHERIT: u64 = u64::MAX;

/// Inbound caps of one EIP as the program reads them: per second, `0` for
/// none, [`CAP_INHERIT`] for the POP default's (`struct rate_caps`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct XdpCaps {
    pub bps: u64,
    pub pps: u64,
}

// SAFETY: `repr(C)`, two u64 and no padding (checked below): every bit pattern
// is a valid value.
unsafe impl Pod for XdpCaps {}
const _: () = assert!(std::mem::size_of::<XdpCaps>() == 16);

impl XdpCaps {
    /// No cap at all.
    pub const NONE: XdpCaps = XdpCaps { bps: 0, pps: 0 };

    /// The caps as the program may police them: a rate above
    /// [`XDP_MAX_RATE`] becomes none (the workers still police it).
    pub fn clamped(self) -> XdpCaps {
        let f = |r: u64| {
            if r > XDP_MAX_RATE && r != CAP_INHERIT {
                0
            } else {
                r
            }
        };
        XdpCaps {
            bps: f(self.bps),
            pps: f(self.pps),
        }
    }

    /// Whether some cap applies (inheriting counts: the default may cap).
    pub fn any(&self) -> bool {
        self.bps != 0 || self.pps != 0
    }
}

/// One EIP with caps of its own.
pub type CapsEntry = (IpAddr, XdpCaps);

/// The key of an EIP: IPv6 as is, IPv4 mapped (`::ffff:a.b.c.d`), as the
/// program builds it.
fn key(eip: IpAddr) -> [u8; 16] {
    match eip {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// The `rate_caps` map and what this process installed in it.
pub(super) struct CapsMap {
    map: HashMap<MapData, [u8; 16], XdpCaps>,
    installed: FxHashMap<[u8; 16], XdpCaps>,
    capacity: u32,
}

impl CapsMap {
    pub(super) fn new(map: HashMap<MapData, [u8; 16], XdpCaps>, capacity: u32) -> Self {
        CapsMap {
            map,
            installed: FxHashMap::default(),
            capacity,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.installed.len()
    }

    /// Sets the entries (clamped; an entry that would cap nothing is removed);
    /// refuses, before writing any, more entries than the map holds.
    pub(super) fn set_all(&mut self, entries: &[CapsEntry]) -> Result<usize, SetupError> {
        let new = entries
            .iter()
            .filter(|(e, _)| !self.installed.contains_key(&key(*e)))
            .count();
        if self.installed.len() + new > self.capacity as usize {
            return Err(SetupError::Map {
                map: "rate_caps",
                what: format!(
                    "{} EIPs with rate caps wanted but the map holds {} (raise max_eips)",
                    self.installed.len() + new,
                    self.capacity
                ),
                source: None,
            });
        }
        let mut written = 0;
        for (eip, caps) in entries {
            let (k, caps) = (key(*eip), caps.clamped());
            if caps
                == (XdpCaps {
                    bps: CAP_INHERIT,
                    pps: CAP_INHERIT,
                })
            {
                // The default decides, as for an EIP without an entry.
                self.remove_key(k)?;
                continue;
            }
            if self.installed.get(&k) == Some(&caps) {
                continue;
            }
            self.map
                .insert(k, caps, 0)
                .map_err(|e| error("writing an EIP's caps", e))?;
            self.installed.insert(k, caps);
            written += 1;
        }
        Ok(written)
    }

    /// Removes the entries of `eips` (those not there skipped).
    pub(super) fn remove_all(&mut self, eips: &[IpAddr]) -> Result<usize, SetupError> {
        let mut removed = 0;
        for eip in eips {
            removed += usize::from(self.remove_key(key(*eip))?);
        }
        Ok(removed)
    }

    /// Makes the map hold exactly `desired`: (written, removed).
    pub(super) fn sync(&mut self, desired: &[CapsEntry]) -> Result<(usize, usize), SetupError> {
        let want: rustc_hash::FxHashSet<[u8; 16]> = desired.iter().map(|(e, _)| key(*e)).collect();
        let stale: Vec<[u8; 16]> = self
            .installed
            .keys()
            .filter(|k| !want.contains(*k))
            .copied()
            .collect();
        for k in &stale {
            self.remove_key(*k)?;
        }
        Ok((self.set_all(desired)?, stale.len()))
    }

    fn remove_key(&mut self, k: [u8; 16]) -> Result<bool, SetupError> {
        if self.installed.remove(&k).is_none() {
            return Ok(false);
        }
        match self.map.remove(&k) {
            Ok(()) => Ok(true),
            Err(e) if errno_of(&e) == Some(libc::ENOENT) => Ok(true),
            Err(e) => Err(error("removing an EIP's caps", e)),
        }
    }
}

fn error(what: &str, source: MapError) -> SetupError {
    SetupError::Map {
        map: "rate_caps",
        what: what.to_string(),
        source: Some(source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_ipv4_into_ipv6_as_the_program_does() {
        let k = key("192.0.2.10".parse().unwrap());
        assert_eq!(&k[..12], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
        assert_eq!(&k[12..], &[192, 0, 2, 10]);
        let k6 = key("2001:db8::10".parse().unwrap());
        assert_eq!(k6[0..2], [0x20, 0x01]);
    }

    #[test]
    fn rates_the_program_cannot_police_are_left_to_the_workers() {
        let c = XdpCaps {
            bps: 400_000_000_000,
            pps: CAP_INHERIT,
        }
        .clamped();
        assert_eq!(
            c,
            XdpCaps {
                bps: 0,
                pps: CAP_INHERIT
            }
        );
        assert!(c.any());
        assert!(!XdpCaps::NONE.any());
        let kept = XdpCaps {
            bps: 8_000_000,
            pps: 1000,
        };
        assert_eq!(kept.clamped(), kept);
    }
}
