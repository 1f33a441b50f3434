//! The flow `eipctl explain` asks about, from its command line.

use crate::args;
use anyhow::Result;
use clap::ValueEnum;
use eip_control::api::{Explain, FlowProtocol};

/// The transport of the flow.
#[derive(Clone, Copy, ValueEnum)]
pub enum FlowArg {
    /// A TCP connection (its SYN, with an MSS option).
    Tcp,
    /// A UDP datagram.
    Udp,
    /// An ICMP echo request (ICMPv6 for IPv6).
    Icmp,
}

/// The `explain` arguments, checked as the daemon will check them, so that a
/// flow that makes no sense is bad input here (nothing is sent).
///
/// # Errors
/// A malformed `ADDRESS[:PORT]`, or what [`Explain::resolved`] refuses.
pub fn explain(
    protocol: FlowArg,
    src: &str,
    dst: &str,
    ident: Option<u16>,
    mss: Option<u16>,
    size: Option<u16>,
) -> Result<Explain> {
    let (src, src_port) = args::address_port(src).map_err(anyhow::Error::msg)?;
    let (dst, dst_port) = args::address_port(dst).map_err(anyhow::Error::msg)?;
    let protocol = match protocol {
        FlowArg::Tcp => FlowProtocol::Tcp,
        FlowArg::Udp => FlowProtocol::Udp,
        FlowArg::Icmp => FlowProtocol::Icmp,
    };
    let flow = Explain {
        src_port,
        dst_port,
        ident,
        mss,
        size,
        ..Explain::new(protocol, src, dst)
    };
    flow.resolved()
        .map_err(|e| anyhow::anyhow!("{} ({})", e.message, e.code))?;
    Ok(flow)
}
