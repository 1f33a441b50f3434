//! The command line: every subcommand and argument, with its help text. Parsing
//! only; `main.rs` turns a parsed command into a request.

use crate::{args, exit, flow};
use clap::{Parser, Subcommand, ValueEnum};
use eip_control::api::{self, DropFilter};
use eip_control::server;
use eip_dataplane::tables::MacAddr;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

/// `eipctl 0.1.0 (abc1234)`: the commit is recorded by `packaging/build-version.rs`.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("EIP_GIT_COMMIT"), ")");

#[derive(Parser)]
#[command(
    name = "eipctl",
    version = VERSION,
    about = "Operate an anycast EIP data plane",
    infer_subcommands = true,
    after_help = exit::AFTER_HELP
)]
pub(crate) struct Cli {
    /// The daemon's control socket.
    #[arg(long, global = true, default_value = server::DEFAULT_SOCKET)]
    pub(crate) socket: PathBuf,
    /// Print the raw JSON reply (for `validate`: the summary as JSON).
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Seconds to wait for a reply.
    #[arg(long, global = true, default_value_t = 30)]
    pub(crate) timeout: u64,
    /// Apply a change only if this table version is in force (compare-and-set).
    #[arg(long, global = true)]
    pub(crate) if_version: Option<u64>,
    /// Apply a change even if it leaves a region that has EIPs with no usable
    /// path; the reply lists the EIPs it blackholes.
    #[arg(long, global = true)]
    pub(crate) blackhole_ok: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum What {
    /// Summary of the tables in force.
    Tables,
    /// Every path: state, whether it carries traffic, health.
    Paths,
    /// The EIPs with their services and backends.
    Eips,
    /// The whole POP description in force, as TOML.
    Spec,
    /// BGP: sessions, announced prefixes, and why a prefix is not announced.
    Bgp,
    /// One EIP's access list with each rule's hits (give its address).
    Acl,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum AdminArg {
    /// Carries traffic as its health allows.
    Enabled,
    /// Never carries traffic.
    Disabled,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum ProtoArg {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP or ICMPv6.
    Icmp,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum StateArg {
    /// Healthy: carries traffic.
    Up,
    /// Carries traffic only if no path of the region is up.
    Down,
    /// Never carries traffic.
    Disabled,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Check a configuration file offline and show the tables it builds.
    Validate {
        /// The TOML configuration (docs/config.md).
        config: PathBuf,
    },
    /// Show the tables, paths (with health), EIPs, or the whole spec (as TOML).
    Show {
        /// What to show.
        what: What,
        /// With `eips`: only this one; with `acl`: the EIP (required).
        address: Option<IpAddr>,
    },
    /// The workers' counters, summed.
    Stats,
    /// Drain the POP: announce with GRACEFUL_SHUTDOWN (RFC 8326), wait
    /// `bgp.drain_wait_ms` while forwarding, withdraw, then stop the daemon.
    Drain,
    /// Where a flow goes now: EIP, backend, region, VNI, path, MTU.
    ///
    /// The daemon runs the flow's first packet through the data plane's pipeline
    /// with the tables in force and reads the frame that comes out: the backend
    /// (for a service, the Maglev pick), region and VNI, path, remote VTEP and
    /// next hop, MSS clamping and the largest packet that passes.
    ///
    /// `eipctl explain tcp 198.51.100.7:40000 192.0.2.20:80`,
    /// `eipctl explain icmp 2001:db8::7 2001:db8:e1::10`.
    Explain {
        /// tcp, udp or icmp (echo request).
        #[arg(value_enum)]
        protocol: flow::FlowArg,
        /// The client: ADDRESS[:PORT] or [IPV6]:PORT (tcp/udp source port
        /// default 49152; icmp takes no port).
        src: String,
        /// The destination: ADDRESS:PORT or [IPV6]:PORT for tcp/udp, ADDRESS for icmp.
        dst: String,
        /// icmp: the echo identifier (it picks the path; default 1).
        #[arg(long)]
        ident: Option<u16>,
        /// tcp: the SYN's MSS option (default 1460, IPv6 1440).
        #[arg(long)]
        mss: Option<u16>,
        /// Also check a packet of this many bytes (IP header included) with DF set.
        #[arg(long)]
        size: Option<u16>,
    },
    /// Live view of path health and per-EIP traffic, redrawn in place.
    Watch {
        /// Refresh period in milliseconds.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        /// Stop after this many frames (default: until interrupted).
        #[arg(long)]
        count: Option<u64>,
        /// EIP rows shown, busiest first.
        #[arg(long, default_value_t = 20)]
        top: usize,
    },
    /// Add an EIP (for services, use add-service or apply).
    AddEip {
        /// The EIP's address (IPv4 or IPv6).
        address: IpAddr,
        /// The region its traffic goes to.
        #[arg(long)]
        region: String,
        /// 1:1 backend: all traffic no service matches.
        #[arg(long)]
        backend: Option<IpAddr>,
    },
    /// Change an EIP's region or 1:1 backend (services are kept).
    UpdateEip {
        /// The EIP to change.
        address: IpAddr,
        /// Move it to this region.
        #[arg(long)]
        region: Option<String>,
        /// New 1:1 backend.
        #[arg(long, conflicts_with = "no_backend")]
        backend: Option<IpAddr>,
        /// Remove the 1:1 backend.
        #[arg(long)]
        no_backend: bool,
    },
    /// Remove an EIP with its services.
    RemoveEip {
        /// The EIP to remove.
        address: IpAddr,
    },
    /// Add a service: `add-service 192.0.2.20 tcp/443 --backend 10.1.0.20 --backend 10.1.0.21:8443@2`.
    AddService {
        /// The EIP to add it to.
        eip: IpAddr,
        /// PROTOCOL/PORT, e.g. tcp/443.
        service: String,
        /// ADDRESS[:PORT][@WEIGHT]; repeat for each backend.
        #[arg(long = "backend", required = true)]
        backends: Vec<String>,
    },
    /// Remove a service of an EIP.
    RemoveService {
        /// The EIP.
        eip: IpAddr,
        /// PROTOCOL/PORT, e.g. tcp/443.
        service: String,
    },
    /// Add a backend to a service: ADDRESS[:PORT][@WEIGHT].
    AddBackend {
        /// The EIP.
        eip: IpAddr,
        /// PROTOCOL/PORT, e.g. tcp/443.
        service: String,
        /// ADDRESS[:PORT][@WEIGHT]; the port defaults to the service's.
        backend: String,
    },
    /// Set a backend's weight: BACKEND is ADDRESS or ADDRESS:PORT.
    UpdateBackend {
        /// The EIP.
        eip: IpAddr,
        /// PROTOCOL/PORT, e.g. tcp/443.
        service: String,
        /// ADDRESS, or ADDRESS:PORT when the address is in the pool twice.
        backend: String,
        /// Its share of new flows (0 drains it).
        #[arg(long)]
        weight: u32,
    },
    /// Weight 0: no new flows to the backend.
    DrainBackend {
        /// The EIP.
        eip: IpAddr,
        /// PROTOCOL/PORT, e.g. tcp/443.
        service: String,
        /// ADDRESS, or ADDRESS:PORT when the address is in the pool twice.
        backend: String,
    },
    /// Remove a backend from a service's pool.
    RemoveBackend {
        /// The EIP.
        eip: IpAddr,
        /// PROTOCOL/PORT, e.g. tcp/443.
        service: String,
        /// ADDRESS, or ADDRESS:PORT when the address is in the pool twice.
        backend: String,
    },
    /// Add a backbone path to a region.
    AddPath {
        /// A new, unique path name.
        name: String,
        /// The region it reaches.
        #[arg(long)]
        region: String,
        /// The port it leaves on (a backbone or one-armed port).
        #[arg(long)]
        port: String,
        /// The next hop's MAC...
        #[arg(long, value_parser = mac, required_unless_present = "next_hop")]
        next_hop_mac: Option<MacAddr>,
        /// ...or its address, resolved by `eipd run` from the neighbour table.
        #[arg(long)]
        next_hop: Option<Ipv4Addr>,
        /// Outer source address (default: pop.vtep).
        #[arg(long)]
        source: Option<Ipv4Addr>,
        /// Outer destination address (default: the region's VTEP).
        #[arg(long)]
        destination: Option<Ipv4Addr>,
        /// Largest outer IPv4 packet the path carries.
        #[arg(long, default_value_t = 1500)]
        mtu: u16,
        /// Share of the region's flows among its usable paths.
        #[arg(long, default_value_t = 1)]
        weight: u32,
        /// Initial state (then the prober's and set-path-admin's).
        #[arg(long, value_enum, default_value = "up")]
        state: StateArg,
    },
    /// Change a path's fields (its state: set-path-admin).
    UpdatePath {
        /// The path to change.
        name: String,
        /// Move it to this region.
        #[arg(long)]
        region: Option<String>,
        /// Leave on this port.
        #[arg(long)]
        port: Option<String>,
        /// The next hop's MAC.
        #[arg(long, value_parser = mac)]
        next_hop_mac: Option<MacAddr>,
        /// Next hop address, resolved by `eipd run`; without --next-hop-mac this
        /// also clears the configured MAC (which would take precedence).
        #[arg(long)]
        next_hop: Option<Ipv4Addr>,
        /// Outer source address.
        #[arg(long, conflicts_with = "default_source")]
        source: Option<Ipv4Addr>,
        /// Go back to pop.vtep as outer source.
        #[arg(long)]
        default_source: bool,
        /// Outer destination address.
        #[arg(long, conflicts_with = "default_destination")]
        destination: Option<Ipv4Addr>,
        /// Go back to the region's vtep as outer destination.
        #[arg(long)]
        default_destination: bool,
        /// Largest outer IPv4 packet the path carries.
        #[arg(long)]
        mtu: Option<u16>,
        /// Share of the region's flows among its usable paths.
        #[arg(long)]
        weight: Option<u32>,
    },
    /// Remove a path.
    RemovePath {
        /// The path to remove.
        name: String,
    },
    /// Enable or disable a path (a disabled path never carries traffic).
    SetPathAdmin {
        /// The path.
        name: String,
        /// enabled or disabled.
        #[arg(value_enum)]
        admin: AdminArg,
    },
    /// Set an EIP's rate limits, or the POP default without ADDRESS; no cap
    /// given removes them: `limit 192.0.2.10 --in-bps 100Mbit --in-pps 50k`.
    /// A cap of 0 means none (even when the POP default has one).
    Limit {
        /// The EIP; without it, the POP's default (`[limits]`).
        address: Option<IpAddr>,
        /// Bits/s toward the EIP: a number or e.g. 100Mbit, 1.5Gbit.
        #[arg(long, value_parser = bits)]
        in_bps: Option<u64>,
        /// Packets/s toward the EIP: a number or e.g. 50k.
        #[arg(long, value_parser = packets)]
        in_pps: Option<u64>,
        /// Bits/s from the EIP (returns).
        #[arg(long, value_parser = bits)]
        out_bps: Option<u64>,
        /// Packets/s from the EIP (returns).
        #[arg(long, value_parser = packets)]
        out_pps: Option<u64>,
    },
    /// Replace an EIP's access list (docs/config.md, ACLs): from a TOML file
    /// or inline text holding `default` and `rules`, or remove it (--clear).
    /// `eipctl acl 192.0.2.10 --rules 'default = "deny"
    /// rules = [{ action = "allow", source = "198.51.100.0/24" }]'`.
    Acl {
        /// The EIP.
        address: IpAddr,
        /// A TOML file: `default = "allow"|"deny"` and `rules = [...]`.
        #[arg(long)]
        file: Option<PathBuf>,
        /// The same TOML, inline.
        #[arg(long)]
        rules: Option<String>,
        /// Remove the list: all traffic allowed.
        #[arg(long)]
        clear: bool,
    },
    /// Apply the ops of a JSON file atomically: an array of ops, `{"ops": [...]}`,
    /// or one op.
    Apply {
        /// The JSON file of ops (docs/control-socket.md).
        file: PathBuf,
        /// Check only (the daemon's `validate`): nothing is applied.
        #[arg(long)]
        dry_run: bool,
    },
    /// Capture the frames the data plane handles (received, transmitted,
    /// dropped) into a pcapng file the daemon writes, one comment per frame
    /// (`rx port internet queue 0 verdict tx port backbone`). Waits until done.
    Trace {
        /// Frames from or to this address (outer or VXLAN inner header; the
        /// return of an EIP's flows is matched after its NAT).
        #[arg(long)]
        eip: Option<IpAddr>,
        /// Only this protocol.
        #[arg(long, value_enum)]
        proto: Option<ProtoArg>,
        /// Source ADDRESS, ADDRESS:PORT, [IPV6]:PORT or :PORT.
        #[arg(long, value_parser = args::trace_endpoint)]
        src: Option<(Option<IpAddr>, Option<u16>)>,
        /// Destination, as --src.
        #[arg(long, value_parser = args::trace_endpoint)]
        dst: Option<(Option<IpAddr>, Option<u16>)>,
        /// Only frames dropped for this reason (a drop counter's name, e.g.
        /// unknown_vtep), or `any`; recorded at the drop only.
        #[arg(long, value_parser = DropFilter::parse)]
        drop: Option<DropFilter>,
        /// Stop after this many frames written.
        #[arg(long, default_value_t = api::DEFAULT_TRACE_COUNT)]
        count: u64,
        /// ... or after this many seconds.
        #[arg(long, default_value_t = api::DEFAULT_TRACE_SECONDS)]
        seconds: u64,
        /// Bytes kept per frame (64-2048).
        #[arg(long, default_value_t = api::DEFAULT_SNAP)]
        snap: u32,
        /// The pcapng file, written by the daemon (which must be able to reach
        /// the path); a relative path is taken from this directory. It must not exist.
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Shell completions and (hidden) man page generation.
    #[command(flatten)]
    Docs(eip_cli_docs::Docs),
    /// Send one raw JSON request line and print the reply line.
    Raw {
        /// The request, e.g. '{"cmd":"show_tables"}'.
        request: String,
    },
    /// Apply a configuration file over what is in force, as one transaction
    /// (the daemon's own --config file if none is named), and say what changed.
    Reload {
        /// TOML configuration; read by the daemon, so on the daemon's host.
        file: Option<PathBuf>,
        /// Check only: say what would change, apply nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub(crate) fn mac(text: &str) -> Result<MacAddr, String> {
    MacAddr::parse(text)
        .ok_or_else(|| format!("{text:?} is not a MAC address like 02:00:00:00:00:01"))
}

fn bits(text: &str) -> Result<u64, String> {
    eip_dataplane::tables::limits::parse_rate(text, &["bit", "bps"])
}

fn packets(text: &str) -> Result<u64, String> {
    eip_dataplane::tables::limits::parse_rate(text, &["pps"])
}
