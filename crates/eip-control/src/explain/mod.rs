//! `explain`: where a flow goes, answered by the data plane itself (the idea of
//! Katran's `simulatePacket()`).
//!
//! Nothing here re-implements a forwarding decision. [`explain`] builds the
//! flow's first packet as it would arrive on the Internet port (`frame`), runs
//! it through a private [`Pipeline`] with the tables in force, and reads the
//! verdict and the transmitted frame with the data plane's wire views
//! (`decode`): the outer destination and MACs name the path and next hop, the
//! VXLAN header the VNI, the inner destination the backend. The tables are
//! consulted only to put names on what the frame says (which path has these
//! addresses, which pool member this backend is) and to cross-check it: a
//! backend the Maglev table would not pick, or a frame on no known path, is
//! reported as a bug rather than explained away.
//!
//! Packet sizes are found the same way: packets of the flow padded to a size
//! go through the pipeline until the largest that passes is known, then one
//! byte more shows what a sender is told (ICMP too big, with which MTU).
//!
//! The pipeline is the control side's own, made for the query: the workers'
//! pipelines, counters and fragment tables are never touched.

mod decode;
mod frame;
#[cfg(test)]
pub(crate) mod tests;

use crate::api::{
    ApiError, EipHit, Endpoint, ErrorCode, Explain, Explanation, FlowProtocol, FlowVerdict,
    MssCheck, MtuReport, ServiceHit, SizeCheck, SizeResult, Tunnel,
};
use crate::replay::{HEADROOM, MAX_FRAME};
use decode::{Encapsulated, IcmpError, Output};
use eip_dataplane::pipeline::PipelineConfig;
use eip_dataplane::tables::{MacAddr, Protocol, Tables};
use eip_dataplane::wire::ip_proto;
use eip_dataplane::{flow, DropReason, Frame, Pipeline, Timestamp, Verdict};
use frame::{Flow, Shape};
use std::net::IpAddr;

/// Largest packet tried when looking for the path's limit: a jumbo frame.
const MAX_PROBE: usize = MAX_FRAME - 14;
/// MSS of the SYN that finds the clamp value (larger than any path allows).
const HUGE_MSS: u16 = u16::MAX;

/// What the data plane does with `request`'s flow with `tables`.
///
/// # Errors
/// `invalid_value` for a flow that does not make sense
/// ([`Explain::resolved`]); `internal` when the transmitted frame contradicts
/// the tables (a bug, reported with both sides).
pub fn explain(tables: &Tables, request: &Explain) -> Result<Explanation, ApiError> {
    let resolved = request.resolved()?;
    let flow = Flow {
        protocol: match (resolved.protocol, resolved.src.is_ipv6()) {
            (FlowProtocol::Tcp, _) => ip_proto::TCP,
            (FlowProtocol::Udp, _) => ip_proto::UDP,
            (FlowProtocol::Icmp, false) => ip_proto::ICMP,
            (FlowProtocol::Icmp, true) => ip_proto::ICMPV6,
        },
        src: resolved.src,
        dst: resolved.dst,
        sport: resolved.src_port.or(resolved.ident).unwrap_or(0),
        dport: resolved.dst_port.unwrap_or(0),
    };
    let mut run = Runner::new(tables);
    let (verdict, out) = run.run(&flow.frame(
        tables,
        Shape::First {
            mss: resolved.mss.unwrap_or(0),
        },
    ));
    let eip = eip_hit(tables, flow.dst);
    let mut x = Explanation {
        flow: resolved,
        verdict: FlowVerdict::ToKernel,
        drop_reason: None,
        icmp_error: None,
        summary: String::new(),
        eip,
        service: None,
        backend: None,
        tunnel: None,
        mtu: None,
    };
    match verdict {
        Verdict::ToKernel => {
            x.summary = match x.eip {
                None => "not an EIP: goes to the kernel".into(),
                Some(_) => "goes to the kernel".into(),
            };
        }
        Verdict::ToControl => {
            x.verdict = FlowVerdict::ToControl;
            x.summary = "goes to the control thread (a path probe reply)".into();
        }
        Verdict::Drop(reason) => {
            x.verdict = FlowVerdict::Dropped;
            x.drop_reason = Some(reason.label().into());
            x.summary = dropped(tables, &x, reason);
        }
        Verdict::Tx(port) => match decode::decode(&out) {
            Output::Encapsulated(e) => forwarded(tables, &mut run, &flow, port, &e, &mut x)?,
            Output::IcmpError(e) => {
                x.verdict = FlowVerdict::IcmpError;
                let text = icmp_text(e);
                x.summary = format!("not forwarded: {text} sent back to {}", flow.src);
                x.icmp_error = Some(text);
            }
            Output::Unknown => {
                return Err(bug(format!(
                    "the pipeline transmitted a frame on port {port} that is neither VXLAN nor an ICMP error"
                )))
            }
        },
    }
    Ok(x)
}

/// Fills in backend, service, tunnel and sizes of a forwarded flow.
fn forwarded(
    t: &Tables,
    run: &mut Runner<'_>,
    flow: &Flow,
    port: u16,
    e: &Encapsulated,
    x: &mut Explanation,
) -> Result<(), ApiError> {
    let hash = flow_hash(flow);
    let eip_id = match flow.dst {
        IpAddr::V4(a) => t.eip_v4(a.octets()),
        IpAddr::V6(a) => t.eip_v6(&a.octets()),
    }
    .ok_or_else(|| bug(format!("{} was forwarded but is no EIP", flow.dst)))?;
    let eip = &t.eips.at(eip_id);
    let has_ports = matches!(flow.protocol, ip_proto::TCP | ip_proto::UDP);
    let backend = Endpoint {
        address: e.inner.dst,
        port: if has_ports { e.inner.dst_port } else { None },
    };
    let service = has_ports
        .then(|| {
            t.services_of(eip)
                .iter()
                .find(|s| s.protocol == flow.protocol && s.port == flow.dport)
        })
        .flatten();
    x.service = match service {
        Some(s) => {
            let slot = flow::backend_slot(hash, s.maglev.len());
            let pick = s.maglev[slot] as usize;
            let member = s.backends[pick];
            if (member.address, Some(member.port)) != (backend.address, backend.port) {
                return Err(bug(format!(
                    "the pipeline sent the flow to {} but the Maglev table of the service picks {}:{}",
                    show(backend),
                    member.address,
                    member.port
                )));
            }
            Some(ServiceHit {
                protocol: if s.protocol == ip_proto::TCP {
                    Protocol::Tcp
                } else {
                    Protocol::Udp
                },
                port: s.port,
                pool: s.backends.len(),
                pick,
                weight: member.weight,
                slot,
                slots: s.maglev.len(),
            })
        }
        None if eip.backend == Some(backend.address) => None,
        None => {
            return Err(bug(format!(
                "the pipeline sent the flow to {} but the EIP's 1:1 backend is {:?}",
                show(backend),
                eip.backend
            )))
        }
    };
    x.backend = Some(backend);

    // The path: the one whose encapsulation the frame carries. Two paths with
    // identical headers cannot be told apart on the wire; the region's table
    // then says which.
    let region = &t.regions[eip.region as usize];
    let expected = (!region.path_table.is_empty()).then(|| region.path_for(hash));
    let candidates: Vec<u16> = (0..t.paths.len() as u16)
        .filter(|&i| {
            let p = &t.paths[i as usize];
            p.port == port
                && p.source == e.outer_src
                && p.destination == e.outer_dst
                && p.template[0..6] == e.dst_mac
                && t.ports[p.port as usize].mac == e.src_mac
                && t.regions[p.region as usize].vni == e.vni
        })
        .collect();
    let path_id = match expected {
        Some(p) if candidates.contains(&p) => p,
        _ => *candidates.first().ok_or_else(|| {
            bug(format!(
                "the frame left on port {port} from {} to {} (VNI {}), which is no path of the tables",
                e.outer_src, e.outer_dst, e.vni
            ))
        })?,
    };
    let path = &t.paths[path_id as usize];
    if path.region != eip.region || e.udp_dst != t.vxlan_port {
        return Err(bug(format!(
            "the frame took path {:?} (UDP port {}), not a path of the EIP's region on the VXLAN port",
            path.name, e.udp_dst
        )));
    }
    let path_region = &t.regions[path.region as usize];
    x.tunnel = Some(Tunnel {
        region: path_region.name.clone(),
        vni: e.vni,
        path: path.name.clone(),
        path_state: path.state,
        region_panic: path_region.panic,
        port: t.ports[port as usize].name.clone(),
        source: e.outer_src,
        remote_vtep: e.outer_dst,
        udp_source_port: e.udp_src,
        next_hop_mac: MacAddr(e.dst_mac),
    });
    x.verdict = FlowVerdict::Forwarded;
    let how = match &x.service {
        Some(s) => format!(
            "service {}/{}, Maglev pick {} of {}",
            protocol_name(s.protocol),
            s.port,
            s.pick + 1,
            s.pool
        ),
        None => "1:1 backend".into(),
    };
    x.summary = format!(
        "forwarded to {} ({how}) in region {} over path {}{}",
        show(backend),
        path_region.name,
        path.name,
        if path_region.panic {
            " (no path of the region is up: using one that is down)"
        } else {
            ""
        }
    );
    x.mtu = Some(sizes(run, flow, path.mtu, x, e)?);
    Ok(())
}

/// Path MTU, the largest packet that passes, and what happens around it.
fn sizes(
    run: &mut Runner<'_>,
    flow: &Flow,
    path_mtu: u16,
    x: &Explanation,
    first: &Encapsulated,
) -> Result<MtuReport, ApiError> {
    let passes =
        |run: &mut Runner<'_>, size: usize| run.size(flow, size, true) == SizeResult::Passes;
    let lo = flow.min_size();
    if !passes(run, lo) {
        return Err(bug(format!(
            "the first packet was forwarded but a {lo}-byte packet of the flow is not"
        )));
    }
    // Invariant: `lo` passes, `hi` does not (or `hi` is the largest tried).
    let (mut lo, mut hi) = (lo, MAX_PROBE);
    if passes(run, hi) {
        lo = hi;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if passes(run, mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let largest = lo;
    let mut checks = vec![SizeCheck {
        size: largest as u16,
        dont_frag: true,
        result: SizeResult::Passes,
    }];
    if largest < MAX_PROBE {
        let over = largest + 1;
        checks.push(size_check(run, flow, over, true));
        if flow.src.is_ipv4() {
            checks.push(size_check(run, flow, over, false));
        }
    }
    if let Some(size) = x.flow.size {
        checks.push(size_check(run, flow, size.into(), true));
    }
    let mss = match (x.flow.protocol, x.flow.mss, first.inner.mss) {
        (FlowProtocol::Tcp, Some(sent), Some(leaves)) => {
            let (_, out) = run.run(&flow.frame(run.tables, Shape::First { mss: HUGE_MSS }));
            let clamp = match decode::decode(&out) {
                Output::Encapsulated(e) => e.inner.mss,
                _ => None,
            }
            .ok_or_else(|| bug("a SYN with a large MSS did not come through".into()))?;
            Some(MssCheck {
                sent,
                leaves,
                clamp,
            })
        }
        _ => None,
    };
    Ok(MtuReport {
        path_mtu,
        largest_inner: largest as u16,
        mss,
        checks,
    })
}

fn size_check(run: &mut Runner<'_>, flow: &Flow, size: usize, dont_frag: bool) -> SizeCheck {
    let size = size.max(flow.min_size());
    SizeCheck {
        size: size as u16,
        dont_frag: dont_frag || flow.src.is_ipv6(),
        result: run.size(flow, size, dont_frag),
    }
}

/// A private pipeline over the tables in force.
struct Runner<'t> {
    tables: &'t Tables,
    pipeline: Pipeline,
}

impl<'t> Runner<'t> {
    fn new(tables: &'t Tables) -> Self {
        Runner {
            tables,
            // No fragments are sent, and enough ICMP budget for every size tried.
            pipeline: Pipeline::new(PipelineConfig {
                fragment_slots: 1,
                icmp_errors_per_second: 1000,
                icmp_error_burst: 1000,
                ..PipelineConfig::default()
            }),
        }
    }

    /// One frame through the pipeline, arriving on the Internet port: the
    /// verdict and the frame as the pipeline left it.
    fn run(&mut self, frame: &[u8]) -> (Verdict, Vec<u8>) {
        let len = frame.len();
        let mut buf = vec![0u8; HEADROOM + len + 256];
        buf[HEADROOM..HEADROOM + len].copy_from_slice(frame);
        let mut frames = [Frame::new(
            &mut buf,
            HEADROOM,
            len,
            self.tables.internet_port,
        )];
        let mut verdicts = [Verdict::ToKernel];
        self.pipeline
            .process(Timestamp(0), self.tables, &mut frames, &mut verdicts);
        (verdicts[0], frames[0].data().to_vec())
    }

    /// What happens to a packet of the flow of `size` bytes.
    fn size(&mut self, flow: &Flow, size: usize, dont_frag: bool) -> SizeResult {
        let (verdict, out) = self.run(&flow.frame(self.tables, Shape::Sized { size, dont_frag }));
        match verdict {
            Verdict::Drop(reason) => SizeResult::Dropped {
                reason: reason.label().into(),
            },
            Verdict::Tx(_) => match decode::decode(&out) {
                Output::Encapsulated(_) => SizeResult::Passes,
                Output::IcmpError(IcmpError::TooBig { mtu }) => SizeResult::TooBig { mtu },
                Output::IcmpError(other) => SizeResult::Dropped {
                    reason: icmp_text(other),
                },
                Output::Unknown => SizeResult::Dropped {
                    reason: "unknown".into(),
                },
            },
            Verdict::ToKernel => SizeResult::Dropped {
                reason: "to_kernel".into(),
            },
            Verdict::ToControl => SizeResult::Dropped {
                reason: "to_control".into(),
            },
        }
    }
}

/// The flow hash the pipeline computes for the flow's packets.
fn flow_hash(flow: &Flow) -> u64 {
    match (flow.src, flow.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => flow::hash_v4(
            s.octets(),
            d.octets(),
            flow.sport,
            flow.dport,
            flow.protocol,
        ),
        (IpAddr::V6(s), IpAddr::V6(d)) => flow::hash_v6(
            &s.octets(),
            &d.octets(),
            flow.sport,
            flow.dport,
            flow.protocol,
        ),
        // `Explain::resolved` refuses mixed families.
        _ => 0,
    }
}

fn eip_hit(t: &Tables, dst: IpAddr) -> Option<EipHit> {
    let id = match dst {
        IpAddr::V4(a) => t.eip_v4(a.octets()),
        IpAddr::V6(a) => t.eip_v6(&a.octets()),
    }?;
    let eip = &t.eips.at(id);
    Some(EipHit {
        address: eip.address,
        region: t.regions[eip.region as usize].name.clone(),
        backend: eip.backend,
        services: eip.services.len(),
    })
}

/// Why a packet was dropped, for people.
fn dropped(t: &Tables, x: &Explanation, reason: DropReason) -> String {
    let label = reason.label();
    let region = x.eip.as_ref().map_or("?", |e| e.region.as_str());
    let service = || match x.flow.dst_port {
        Some(port) => format!("{}/{port}", x.flow.protocol.as_str()),
        None => x.flow.protocol.as_str().to_string(),
    };
    let why = match reason {
        DropReason::NoService => format!(
            "EIP {} has no {} service and no 1:1 backend",
            x.flow.dst,
            service()
        ),
        DropReason::NoBackend => format!(
            "every backend of service {} of EIP {} is drained (weight 0)",
            service(),
            x.flow.dst
        ),
        DropReason::NoPath => {
            let paths: Vec<&str> = t
                .regions
                .iter()
                .find(|r| r.name == region)
                .map(|r| {
                    r.paths
                        .iter()
                        .map(|&p| t.paths[p as usize].name.as_str())
                        .collect()
                })
                .unwrap_or_default();
            if paths.is_empty() {
                format!("region {region} has no path")
            } else {
                format!(
                    "no usable path to region {region}: {} all disabled",
                    paths.join(", ")
                )
            }
        }
        DropReason::FamilyMismatch => "the backend is not of the flow's address family".into(),
        DropReason::TooBig => "the packet does not fit the path".into(),
        DropReason::AclDenied => acl_denied(t, &x.flow),
        _ => return format!("dropped ({label})"),
    };
    format!("dropped ({label}): {why}")
}

/// Which entry of the EIP's access list refuses the flow.
fn acl_denied(t: &Tables, flow: &Explain) -> String {
    let Some(acl) = t.eip_slot(flow.dst).and_then(|s| t.eips.acl(s)) else {
        return format!("the access list of EIP {} denies it", flow.dst);
    };
    let (v6, src) = match flow.src {
        IpAddr::V4(a) => (false, u128::from(u32::from(a))),
        IpAddr::V6(a) => (true, u128::from(a)),
    };
    let protocol = match (flow.protocol, v6) {
        (FlowProtocol::Tcp, _) => 6,
        (FlowProtocol::Udp, _) => 17,
        (FlowProtocol::Icmp, false) => 1,
        (FlowProtocol::Icmp, true) => 58,
    };
    let v = acl.check(v6, src, protocol, flow.dst_port);
    let entry = if v.rule as usize == acl.rules() {
        "its default".to_string()
    } else {
        format!("rules[{}]", v.rule)
    };
    format!(
        "the access list of EIP {} denies it: {entry} (eipctl show acl {})",
        flow.dst, flow.dst
    )
}

fn icmp_text(e: IcmpError) -> String {
    match e {
        IcmpError::TooBig { mtu } => format!("ICMP too big (MTU {mtu})"),
        IcmpError::TimeExceeded => "ICMP time exceeded".into(),
        IcmpError::Other { kind, code } => format!("ICMP type {kind} code {code}"),
    }
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

fn show(e: Endpoint) -> String {
    match (e.address, e.port) {
        (a, None) => a.to_string(),
        (IpAddr::V4(a), Some(p)) => format!("{a}:{p}"),
        (IpAddr::V6(a), Some(p)) => format!("[{a}]:{p}"),
    }
}

fn bug(message: String) -> ApiError {
    ApiError::new(ErrorCode::Internal, format!("explain: {message} (a bug)"))
}
