//! The minimal loop: the bound the pipeline is measured against.
//!
//! It does the header work of a case on the same batch layout (the same frames in
//! the same buffers) and nothing else: read the headers it needs, look the key
//! address up in a small open-addressed table, rewrite the address (and the
//! service port) with RFC 1624 checksum updates, decrement the TTL, hash the flow,
//! pick the path and write the 64-byte encapsulation (ingress), or check the VTEP,
//! strip the encapsulation and rewrite the inner Ethernet header (returns). It
//! validates only what it must not to index out of range, counts nothing, and knows
//! one shape of packet: IPv4 without options, TCP or UDP. Frames of any other shape
//! get `Verdict::ToKernel`, so its cost on a case that holds them is not a bound.
//!
//! The ratio of the pipeline's cost to this loop's is the overhead of the
//! pipeline's generality (IPv6, VLANs, fragments, ICMP, every drop reason counted).
//! It neither polices nor filters: on the rate-limited and ACL cases the ratio
//! includes what the limits and lists cost. Which direction a case's frames go
//! is the workload's ([`crate::workloads::Workload::returns`]), so the returns
//! of rate-limited EIPs are decapsulated, as the pipeline does.

use eip_dataplane::flow::{self, FastMod};
use eip_dataplane::pipeline::write_encap_header;
use eip_dataplane::tables::{Tables, ENCAP_LEN};
use eip_dataplane::wire::checksum;
use eip_dataplane::{Frame, Verdict};
use std::net::IpAddr;

/// What a key address maps to.
#[derive(Clone, Copy)]
struct Entry {
    key: u32,
    /// New address (ingress: the backend; returns: the EIP).
    addr: [u8; 4],
    region: u16,
    /// Index into `services` + 1, or 0: the EIP's first service (ingress only).
    service: u32,
}

/// One service: its port and protocol, its Maglev table mapped to (address, port).
struct Service {
    protocol: u8,
    port: u16,
    slots: Box<[([u8; 4], u16)]>,
}

/// The minimal loop's tables: one open-addressed array keyed by IPv4 address.
pub struct MiniTables {
    entries: Box<[Entry]>,
    mask: usize,
    services: Vec<Service>,
    /// Per region: path table (template index), its remainder, the remote VTEP.
    regions: Vec<(Box<[u16]>, FastMod, [u8; 4])>,
    templates: Vec<[u8; ENCAP_LEN]>,
    ports: Vec<u16>,
    local_vtep: [u8; 4],
    returns: bool,
    internet_port: u16,
    internet_macs: [u8; 12],
}

#[inline(always)]
fn slot_of(key: u32, mask: usize) -> usize {
    (key.wrapping_mul(0x9E37_79B1) >> 8) as usize & mask
}

impl MiniTables {
    /// The IPv4 part of `tables`: keyed by EIP address (ingress) or by backend
    /// address (`returns`).
    pub fn new(tables: &Tables, returns: bool) -> MiniTables {
        let mut pairs: Vec<(u32, Entry)> = Vec::new();
        let mut services = Vec::new();
        for (_, eip) in tables.eips.iter() {
            let IpAddr::V4(address) = eip.address else {
                continue;
            };
            let backend = match eip.backend {
                Some(IpAddr::V4(b)) => Some(b.octets()),
                _ => None,
            };
            let service = tables.services_of(&eip).first().map(|s| {
                let slots = s
                    .maglev
                    .iter()
                    .map(|&b| {
                        let b = &s.backends[b as usize];
                        let addr = match b.address {
                            IpAddr::V4(a) => a.octets(),
                            IpAddr::V6(_) => [0; 4],
                        };
                        (addr, b.port)
                    })
                    .collect();
                services.push(Service {
                    protocol: s.protocol,
                    port: s.port,
                    slots,
                });
                services.len() as u32
            });
            if returns {
                if let Some(b) = backend {
                    pairs.push((
                        u32::from_be_bytes(b),
                        Entry {
                            key: 0,
                            addr: address.octets(),
                            region: eip.region,
                            service: 0,
                        },
                    ));
                }
            } else {
                pairs.push((
                    u32::from(address),
                    Entry {
                        key: 0,
                        addr: backend.unwrap_or([0; 4]),
                        region: eip.region,
                        service: service.unwrap_or(0),
                    },
                ));
            }
        }
        let size = (pairs.len() * 2).next_power_of_two().max(16);
        let mut entries = vec![
            Entry {
                key: 0,
                addr: [0; 4],
                region: 0,
                service: 0,
            };
            size
        ];
        for (key, mut e) in pairs {
            let mut s = slot_of(key, size - 1);
            while entries[s].key != 0 {
                s = (s + 1) & (size - 1);
            }
            e.key = key;
            entries[s] = e;
        }
        let internet = &tables.ports[tables.internet_port as usize];
        let mut internet_macs = [0u8; 12];
        internet_macs[..6].copy_from_slice(&internet.gateway_mac.unwrap_or([0xff; 6]));
        internet_macs[6..].copy_from_slice(&internet.mac);
        MiniTables {
            entries: entries.into_boxed_slice(),
            mask: size - 1,
            services,
            regions: tables
                .regions
                .iter()
                .map(|r| (r.path_table.clone(), r.path_mod, r.vtep.octets()))
                .collect(),
            templates: tables.paths.iter().map(|p| p.template).collect(),
            ports: tables.paths.iter().map(|p| p.port).collect(),
            local_vtep: tables.local_vteps.first().map_or([0; 4], |v| v.octets()),
            returns,
            internet_port: tables.internet_port,
            internet_macs,
        }
    }

    #[inline(always)]
    fn get(&self, key: u32) -> Option<&Entry> {
        let mut s = slot_of(key, self.mask);
        loop {
            let e = &self.entries[s];
            if e.key == key {
                return Some(e);
            }
            if e.key == 0 {
                return None;
            }
            s = (s + 1) & self.mask;
        }
    }

    /// One batch: one verdict per frame.
    #[inline(never)]
    pub fn process(&self, frames: &mut [Frame<'_>], verdicts: &mut [Verdict]) {
        for (frame, verdict) in frames.iter_mut().zip(verdicts.iter_mut()) {
            *verdict = if self.returns {
                self.decap(frame)
            } else {
                self.encap(frame)
            }
            .unwrap_or(Verdict::ToKernel);
        }
    }

    #[inline(always)]
    fn encap(&self, frame: &mut Frame<'_>) -> Option<Verdict> {
        let d: &mut [u8; 54] = frame.data_mut().get_mut(..54)?.try_into().ok()?;
        if d[12..14] != [0x08, 0x00] || d[14] != 0x45 || d[22] <= 1 {
            return None;
        }
        let protocol = d[23];
        let csum_at = match protocol {
            6 => 34 + 16,
            17 => 34 + 6,
            _ => return None,
        };
        let inner_len = u16::from_be_bytes([d[16], d[17]]);
        let src = [d[26], d[27], d[28], d[29]];
        let dst = [d[30], d[31], d[32], d[33]];
        let sport = u16::from_be_bytes([d[34], d[35]]);
        let dport = u16::from_be_bytes([d[36], d[37]]);
        let e = self.get(u32::from_be_bytes(dst))?;
        let hash = flow::hash_v4(src, dst, sport, dport, protocol);
        let (backend, new_port) = match self.services.get((e.service as usize).wrapping_sub(1)) {
            Some(s) if s.protocol == protocol && s.port == dport => {
                s.slots[flow::backend_slot(hash, s.slots.len())]
            }
            _ => (e.addr, dport),
        };
        let mut ip_sum = u16::from_be_bytes([d[24], d[25]]);
        let mut l4_sum = u16::from_be_bytes([d[csum_at], d[csum_at + 1]]);
        let (old, new) = (u32::from_be_bytes(dst), u32::from_be_bytes(backend));
        ip_sum = checksum::update32(ip_sum, old, new);
        if protocol == 6 || l4_sum != 0 {
            l4_sum = checksum::update32(l4_sum, old, new);
            if new_port != dport {
                l4_sum = checksum::update16(l4_sum, dport, new_port);
            }
            if protocol == 17 && l4_sum == 0 {
                l4_sum = 0xFFFF;
            }
        }
        d[30..34].copy_from_slice(&backend);
        d[36..38].copy_from_slice(&new_port.to_be_bytes());
        let ttl = d[22];
        ip_sum = checksum::update16(
            ip_sum,
            u16::from_be_bytes([ttl, protocol]),
            u16::from_be_bytes([ttl - 1, protocol]),
        );
        d[22] = ttl - 1;
        d[24..26].copy_from_slice(&ip_sum.to_be_bytes());
        d[csum_at..csum_at + 2].copy_from_slice(&l4_sum.to_be_bytes());
        let (path_table, path_mod, _) = &self.regions[e.region as usize];
        let path = path_table[path_mod.remainder((hash >> 32) as u32) as usize] as usize;
        if !(frame.push_head(ENCAP_LEN - 14) && frame.set_len(ENCAP_LEN + inner_len as usize)) {
            return None;
        }
        let hdr: &mut [u8; ENCAP_LEN] = (&mut frame.data_mut()[..ENCAP_LEN]).try_into().ok()?;
        write_encap_header(hdr, &self.templates[path], inner_len, false, hash);
        Some(Verdict::Tx(self.ports[path]))
    }

    #[inline(always)]
    fn decap(&self, frame: &mut Frame<'_>) -> Option<Verdict> {
        const INNER_L2: usize = 14 + 20 + 8 + 8;
        const INNER: usize = INNER_L2 + 14;
        let d: &mut [u8; INNER + 28] = frame.data_mut().get_mut(..INNER + 28)?.try_into().ok()?;
        if d[12..14] != [0x08, 0x00]
            || d[14] != 0x45
            || d[23] != 17
            || d[30..34] != self.local_vtep
            || d[36..38] != [0x12, 0xb5]
            || d[INNER_L2 + 12..INNER_L2 + 14] != [0x08, 0x00]
            || d[INNER] != 0x45
            || d[INNER + 8] <= 1
        {
            return None;
        }
        let protocol = d[INNER + 9];
        let csum_at = match protocol {
            6 => INNER + 20 + 16,
            17 => INNER + 20 + 6,
            _ => return None,
        };
        let src = [d[INNER + 12], d[INNER + 13], d[INNER + 14], d[INNER + 15]];
        let e = self.get(u32::from_be_bytes(src))?;
        if d[26..30] != self.regions[e.region as usize].2 {
            return None;
        }
        let inner_len = u16::from_be_bytes([d[INNER + 2], d[INNER + 3]]) as usize;
        let (old, new) = (u32::from_be_bytes(src), u32::from_be_bytes(e.addr));
        let mut ip_sum = u16::from_be_bytes([d[INNER + 10], d[INNER + 11]]);
        let mut l4_sum = u16::from_be_bytes([d[csum_at], d[csum_at + 1]]);
        ip_sum = checksum::update32(ip_sum, old, new);
        if protocol == 6 || l4_sum != 0 {
            l4_sum = checksum::update32(l4_sum, old, new);
            if protocol == 17 && l4_sum == 0 {
                l4_sum = 0xFFFF;
            }
        }
        let ttl = d[INNER + 8];
        ip_sum = checksum::update16(
            ip_sum,
            u16::from_be_bytes([ttl, protocol]),
            u16::from_be_bytes([ttl - 1, protocol]),
        );
        d[INNER + 8] = ttl - 1;
        d[INNER + 12..INNER + 16].copy_from_slice(&e.addr);
        d[INNER + 10..INNER + 12].copy_from_slice(&ip_sum.to_be_bytes());
        d[csum_at..csum_at + 2].copy_from_slice(&l4_sum.to_be_bytes());
        d[INNER_L2..INNER_L2 + 12].copy_from_slice(&self.internet_macs);
        if !(frame.pull_head(INNER_L2) && frame.set_len(14 + inner_len)) {
            return None;
        }
        Some(Verdict::Tx(self.internet_port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads;
    use eip_dataplane::testkit::run_one;

    /// The minimal loop writes the same bytes as the pipeline on the frames it
    /// handles (so it does the same work), and handles every frame of the
    /// synthetic cases (so its figure is a bound for them).
    #[test]
    fn same_output_as_the_pipeline() {
        for w in [
            workloads::returns_1k_eips(),
            workloads::returns_1k_eips_limited(),
            workloads::service_1000_backends(),
        ] {
            let mini = MiniTables::new(&w.tables, w.returns);
            for input in w.frames.iter().take(256) {
                let (verdict, expected, _) = run_one(&w.tables, input, w.input_port);
                let mut buf = vec![0u8; 2048];
                buf[256..256 + input.len()].copy_from_slice(input);
                let mut frames = [Frame::new(&mut buf, 256, input.len(), w.input_port)];
                let mut verdicts = [Verdict::ToKernel];
                mini.process(&mut frames, &mut verdicts);
                assert_eq!(verdicts[0], verdict, "{}", w.name);
                assert_eq!(frames[0].data(), &expected[..], "{}", w.name);
            }
        }
    }
}
