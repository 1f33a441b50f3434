//! `explain`: where one flow goes with the tables in force, as the data plane
//! itself decides it (Katran's `simulatePacket()`). The arguments name the flow;
//! the reply says what the pipeline did with its first packet and why.
//!
//! The work is done by [`crate::explain`]; these are the plain-data forms on
//! the wire.

use super::ApiError;
use eip_dataplane::tables::{MacAddr, PathState, Protocol};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};

/// Source port assumed when a TCP/UDP flow names none (the first port of the
/// dynamic range). The path and a service's backend depend on it.
pub const DEFAULT_SOURCE_PORT: u16 = 49152;
/// ICMP echo identifier assumed when none is given.
pub const DEFAULT_ECHO_IDENT: u16 = 1;
/// MSS option of the SYN when none is given: what a host on a 1500-byte
/// Ethernet announces.
pub const DEFAULT_MSS_V4: u16 = 1460;
/// The same for IPv6 (40-byte header instead of 20).
pub const DEFAULT_MSS_V6: u16 = 1440;

/// Transport of the flow to explain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowProtocol {
    /// A TCP connection: its SYN (with an MSS option) is explained.
    Tcp,
    /// A UDP datagram.
    Udp,
    /// An ICMP (ICMPv6 for IPv6) echo request.
    Icmp,
}

impl FlowProtocol {
    /// `tcp`, `udp` or `icmp`.
    pub fn as_str(self) -> &'static str {
        match self {
            FlowProtocol::Tcp => "tcp",
            FlowProtocol::Udp => "udp",
            FlowProtocol::Icmp => "icmp",
        }
    }
}

/// Arguments of `explain`: a flow as a client on the Internet sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Explain {
    pub protocol: FlowProtocol,
    /// The client.
    pub src: IpAddr,
    /// TCP/UDP only; default [`DEFAULT_SOURCE_PORT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    /// The address the client sends to (an EIP, or not).
    pub dst: IpAddr,
    /// TCP/UDP only, and required for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<u16>,
    /// ICMP only: the echo identifier (it picks the path); default
    /// [`DEFAULT_ECHO_IDENT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ident: Option<u16>,
    /// TCP only: the MSS option of the SYN; default [`DEFAULT_MSS_V4`] or
    /// [`DEFAULT_MSS_V6`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mss: Option<u16>,
    /// Also check a packet of this many bytes (IP header included) with DF set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u16>,
}

impl Explain {
    /// A flow with no optional field set.
    pub fn new(protocol: FlowProtocol, src: IpAddr, dst: IpAddr) -> Self {
        Explain {
            protocol,
            src,
            src_port: None,
            dst,
            dst_port: None,
            ident: None,
            mss: None,
            size: None,
        }
    }

    /// The flow checked, with every default filled in (what the reply echoes).
    ///
    /// # Errors
    /// `invalid_value`: source and destination of different families, a port
    /// on an ICMP flow or missing from a TCP/UDP one, a field that does not
    /// belong to the protocol.
    pub fn resolved(&self) -> Result<Explain, ApiError> {
        let mut flow = self.clone();
        if self.src.is_ipv4() != self.dst.is_ipv4() {
            return Err(ApiError::invalid(format!(
                "explain: {} and {} are not of the same address family",
                self.src, self.dst
            )));
        }
        let proto = self.protocol.as_str();
        let refuse =
            |field: &str, why: &str| Err(ApiError::invalid(format!("explain: {field}: {why}")));
        match self.protocol {
            FlowProtocol::Tcp | FlowProtocol::Udp => {
                if self.dst_port.is_none() {
                    return refuse(
                        "dst_port",
                        &format!("a {proto} flow needs a destination port"),
                    );
                }
                if self.ident.is_some() {
                    return refuse("ident", "only ICMP echo has an identifier");
                }
                flow.src_port = Some(self.src_port.unwrap_or(DEFAULT_SOURCE_PORT));
            }
            FlowProtocol::Icmp => {
                if self.src_port.is_some() || self.dst_port.is_some() {
                    return refuse(
                        "src_port/dst_port",
                        "ICMP has no ports (the echo identifier is `ident`)",
                    );
                }
                flow.ident = Some(self.ident.unwrap_or(DEFAULT_ECHO_IDENT));
            }
        }
        match (self.protocol, self.mss) {
            (FlowProtocol::Tcp, mss) => {
                let default = if self.src.is_ipv4() {
                    DEFAULT_MSS_V4
                } else {
                    DEFAULT_MSS_V6
                };
                flow.mss = Some(mss.unwrap_or(default));
            }
            (_, Some(_)) => return refuse("mss", "only a TCP SYN carries an MSS"),
            (_, None) => {}
        }
        Ok(flow)
    }
}

/// What the data plane did with the flow's first packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowVerdict {
    /// NATed and encapsulated toward the EIP's region.
    Forwarded,
    /// Not the data plane's: handed to the host's network stack.
    ToKernel,
    /// Dropped; `drop_reason` says why.
    Dropped,
    /// Answered with an ICMP error to the client (`icmp_error`).
    IcmpError,
    /// Handed to the control thread.
    ToControl,
}

/// The reply of `explain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    /// The flow explained, defaults filled in.
    pub flow: Explain,
    pub verdict: FlowVerdict,
    /// The drop counter the packet went to, when dropped (`no_path`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_reason: Option<String>,
    /// The ICMP error sent back instead, when one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_error: Option<String>,
    /// One line for people.
    pub summary: String,
    /// The EIP the destination is, if it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eip: Option<EipHit>,
    /// The service that matched (none: the EIP's 1:1 backend took the flow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceHit>,
    /// Where the packet was sent: the inner destination of the tunnelled frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<Endpoint>,
    /// The tunnel it was sent through, read from the outer headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<Tunnel>,
    /// How packet sizes are treated on that path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<MtuReport>,
}

/// The EIP a flow is addressed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EipHit {
    pub address: IpAddr,
    pub region: String,
    /// The 1:1 backend (traffic no service matches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<IpAddr>,
    /// Number of services of the EIP.
    pub services: usize,
}

/// The service a flow matched and the Maglev pick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceHit {
    pub protocol: Protocol,
    pub port: u16,
    /// Members of the pool (drained ones included).
    pub pool: usize,
    /// Index of the picked member in the pool (as configured, from 0).
    pub pick: usize,
    /// Its weight.
    pub weight: u32,
    /// The flow hash's slot in the Maglev table, and the table's size.
    pub slot: usize,
    pub slots: usize,
}

/// An address and, for TCP/UDP, a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub address: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// The VXLAN tunnel a packet leaves through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tunnel {
    pub region: String,
    pub vni: u32,
    /// The backbone path.
    pub path: String,
    /// Its state in the tables in force.
    pub path_state: PathState,
    /// The region has no path up and uses its down ones.
    pub region_panic: bool,
    /// The port it leaves on.
    pub port: String,
    /// Outer source address (our VTEP on this path).
    pub source: Ipv4Addr,
    /// Outer destination address: the remote VTEP.
    pub remote_vtep: Ipv4Addr,
    /// Outer UDP source port (the flow's ECMP entropy in the backbone).
    pub udp_source_port: u16,
    /// Destination MAC of the outer frame.
    pub next_hop_mac: MacAddr,
}

/// Packet sizes on the flow's path, each found by running packets through the
/// pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MtuReport {
    /// The path's MTU (outer IPv4 packet).
    pub path_mtu: u16,
    /// Largest inner IP packet that is forwarded.
    pub largest_inner: u16,
    /// TCP only: what happens to the SYN's MSS option.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mss: Option<MssCheck>,
    /// Packets of chosen sizes: the largest that passes, one byte more (with
    /// DF and, for IPv4, without), and the requested `size`.
    pub checks: Vec<SizeCheck>,
}

/// The SYN's MSS option before and after the data plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MssCheck {
    /// In the SYN as sent.
    pub sent: u16,
    /// In the SYN as it leaves through the tunnel.
    pub leaves: u16,
    /// The value any larger MSS is lowered to on this path.
    pub clamp: u16,
}

/// One packet size through the pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeCheck {
    /// IP packet length, header included.
    pub size: u16,
    /// Don't-fragment set (always for IPv6).
    pub dont_frag: bool,
    /// `"result": "passes" | "too_big" | "dropped"`, with its fields beside it.
    #[serde(flatten)]
    pub result: SizeResult,
}

/// What happened to a packet of a given size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum SizeResult {
    /// Forwarded.
    Passes,
    /// An ICMP "fragmentation needed" / "packet too big" went back to the
    /// client, telling it this MTU.
    TooBig { mtu: u32 },
    /// Dropped, counted under `reason`.
    Dropped { reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ErrorCode;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn size_checks_are_flat() {
        let check = SizeCheck {
            size: 1501,
            dont_frag: true,
            result: SizeResult::TooBig { mtu: 1500 },
        };
        let json = serde_json::to_string(&check).unwrap();
        assert_eq!(
            json,
            r#"{"size":1501,"dont_frag":true,"result":"too_big","mtu":1500}"#
        );
        assert_eq!(serde_json::from_str::<SizeCheck>(&json).unwrap(), check);
    }

    #[test]
    fn defaults_are_filled_in_and_nonsense_refused() {
        let mut e = Explain::new(FlowProtocol::Tcp, ip("198.51.100.7"), ip("192.0.2.20"));
        let err = e.resolved().unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidValue);
        assert!(err.message.contains("needs a destination port"), "{err}");
        e.dst_port = Some(80);
        let r = e.resolved().unwrap();
        assert_eq!(
            (r.src_port, r.mss, r.ident),
            (Some(49152), Some(1460), None)
        );

        let mut e = Explain::new(FlowProtocol::Icmp, ip("2001:db8::7"), ip("2001:db8:e1::10"));
        let r = e.resolved().unwrap();
        assert_eq!((r.ident, r.mss, r.src_port), (Some(1), None, None));
        e.dst_port = Some(1);
        assert!(e.resolved().unwrap_err().message.contains("no ports"));

        let e = Explain::new(FlowProtocol::Udp, ip("2001:db8::7"), ip("192.0.2.20"));
        assert!(e.resolved().unwrap_err().message.contains("family"));
        let mut e = Explain::new(FlowProtocol::Udp, ip("198.51.100.7"), ip("192.0.2.20"));
        e.dst_port = Some(53);
        e.mss = Some(1000);
        assert!(e.resolved().unwrap_err().message.contains("mss"));
    }
}
