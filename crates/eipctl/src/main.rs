//! `eipctl`: the operator's client. Talks to `eipd`'s control socket
//! (`docs/control-socket.md`), and validates configurations offline.
//!
//! Human-readable output by default, `--json` for the daemon's raw reply. The
//! exit status is 0 on success, 1 when the daemon refused the request (its
//! message on stderr), 2 when it could not be asked (no daemon, bad arguments).

#![forbid(unsafe_code)]

mod args;
mod render;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use eip_control::api::{
    self, AddBackend, AddEip, AddPath, AddService, Admin, BackendRef, Command as Cmd, Op, PathRef,
    Query, RemoveEip, Reply, Request, ServiceRef, SetPathAdmin, ShowEips, UpdateBackend, UpdateEip,
    UpdatePath,
};
use eip_control::client::Client;
use eip_control::{config, report, server};
use eip_dataplane::tables::spec::{BackendSpec, EipSpec, PathSpec, ServiceSpec};
use eip_dataplane::tables::{MacAddr, PathState};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// `eipctl 0.1.0 (abc1234)`: the commit is recorded by `packaging/build-version.rs`.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("EIP_GIT_COMMIT"), ")");

#[derive(Parser)]
#[command(name = "eipctl", version = VERSION, about = "Operate an anycast EIP data plane")]
struct Cli {
    /// The daemon's control socket.
    #[arg(long, global = true, default_value = server::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Print the raw JSON reply (for `validate`: the summary as JSON).
    #[arg(long, global = true)]
    json: bool,
    /// Seconds to wait for a reply.
    #[arg(long, global = true, default_value_t = 30)]
    timeout: u64,
    /// Apply a change only if this table version is in force (compare-and-set).
    #[arg(long, global = true)]
    if_version: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum What {
    Tables,
    Paths,
    Eips,
    Spec,
}

#[derive(Clone, Copy, ValueEnum)]
enum AdminArg {
    Enabled,
    Disabled,
}

#[derive(Clone, Copy, ValueEnum)]
enum StateArg {
    Up,
    Down,
    Disabled,
}

#[derive(Subcommand)]
enum Command {
    /// Check a configuration file offline and show the tables it builds.
    Validate {
        config: PathBuf,
    },
    /// Show the tables, paths (with health), EIPs, or the whole spec (as TOML).
    Show {
        what: What,
        /// With `eips`: only this one.
        address: Option<IpAddr>,
    },
    /// The workers' counters, summed.
    Stats,
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
        address: IpAddr,
        #[arg(long)]
        region: String,
        /// 1:1 backend: all traffic no service matches.
        #[arg(long)]
        backend: Option<IpAddr>,
    },
    /// Change an EIP's region or 1:1 backend (services are kept).
    UpdateEip {
        address: IpAddr,
        #[arg(long)]
        region: Option<String>,
        #[arg(long, conflicts_with = "no_backend")]
        backend: Option<IpAddr>,
        /// Remove the 1:1 backend.
        #[arg(long)]
        no_backend: bool,
    },
    RemoveEip {
        address: IpAddr,
    },
    /// Add a service: `add-service 192.0.2.20 tcp/443 --backend 10.1.0.20 --backend 10.1.0.21:8443@2`.
    AddService {
        eip: IpAddr,
        /// PROTOCOL/PORT, e.g. tcp/443.
        service: String,
        /// ADDRESS[:PORT][@WEIGHT]; repeat for each backend.
        #[arg(long = "backend", required = true)]
        backends: Vec<String>,
    },
    RemoveService {
        eip: IpAddr,
        service: String,
    },
    /// Add a backend to a service: ADDRESS[:PORT][@WEIGHT].
    AddBackend {
        eip: IpAddr,
        service: String,
        backend: String,
    },
    /// Set a backend's weight: BACKEND is ADDRESS or ADDRESS:PORT.
    UpdateBackend {
        eip: IpAddr,
        service: String,
        backend: String,
        #[arg(long)]
        weight: u32,
    },
    /// Weight 0: no new flows to the backend.
    DrainBackend {
        eip: IpAddr,
        service: String,
        backend: String,
    },
    RemoveBackend {
        eip: IpAddr,
        service: String,
        backend: String,
    },
    AddPath {
        name: String,
        #[arg(long)]
        region: String,
        #[arg(long)]
        port: String,
        /// The next hop's MAC...
        #[arg(long, value_parser = mac, required_unless_present = "next_hop")]
        next_hop_mac: Option<MacAddr>,
        /// ...or its address, resolved by `eipd run` from the neighbour table.
        #[arg(long)]
        next_hop: Option<Ipv4Addr>,
        #[arg(long)]
        source: Option<Ipv4Addr>,
        #[arg(long)]
        destination: Option<Ipv4Addr>,
        #[arg(long, default_value_t = 1500)]
        mtu: u16,
        #[arg(long, default_value_t = 1)]
        weight: u32,
        #[arg(long, value_enum, default_value = "up")]
        state: StateArg,
    },
    /// Change a path's fields (its state: set-path-admin).
    UpdatePath {
        name: String,
        #[arg(long)]
        region: Option<String>,
        #[arg(long)]
        port: Option<String>,
        #[arg(long, value_parser = mac)]
        next_hop_mac: Option<MacAddr>,
        /// Next hop address, resolved by `eipd run`; without --next-hop-mac this
        /// also clears the configured MAC (which would take precedence).
        #[arg(long)]
        next_hop: Option<Ipv4Addr>,
        #[arg(long, conflicts_with = "default_source")]
        source: Option<Ipv4Addr>,
        /// Go back to pop.vtep as outer source.
        #[arg(long)]
        default_source: bool,
        #[arg(long, conflicts_with = "default_destination")]
        destination: Option<Ipv4Addr>,
        /// Go back to the region's vtep as outer destination.
        #[arg(long)]
        default_destination: bool,
        #[arg(long)]
        mtu: Option<u16>,
        #[arg(long)]
        weight: Option<u32>,
    },
    RemovePath {
        name: String,
    },
    /// Enable or disable a path (a disabled path never carries traffic).
    SetPathAdmin {
        name: String,
        #[arg(value_enum)]
        admin: AdminArg,
    },
    /// Apply the ops of a JSON file atomically: an array of ops, `{"ops": [...]}`,
    /// or one op.
    Apply {
        file: PathBuf,
        /// Check only (the daemon's `validate`): nothing is applied.
        #[arg(long)]
        dry_run: bool,
    },
    /// Send one raw JSON request line and print the reply line.
    Raw {
        request: String,
    },
    /// Shell completions and (hidden) man page generation.
    #[command(flatten)]
    Docs(eip_cli_docs::Docs),
}

fn mac(text: &str) -> Result<MacAddr, String> {
    MacAddr::parse(text)
        .ok_or_else(|| format!("{text:?} is not a MAC address like 02:00:00:00:00:01"))
}

/// A refused request: reported on stderr, exit status 1.
struct Refused;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(Refused)) => ExitCode::from(1),
        Err(e) => {
            eprintln!("eipctl: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<Result<(), Refused>> {
    let timeout = Duration::from_secs(cli.timeout.max(1));
    let connect = || Client::connect(&cli.socket, timeout).map_err(anyhow::Error::from);
    let change = |op: Op| Request {
        if_version: cli.if_version,
        command: Cmd::Change(op),
    };
    let request = match cli.command {
        Command::Validate { config } => return validate(&config, cli.json).map(Ok),
        Command::Docs(docs) => return Ok(Ok(docs.run::<Cli>()?)),
        Command::Watch {
            interval_ms,
            count,
            top,
        } => return watch(connect()?, interval_ms, count, top),
        Command::Raw { request } => {
            let reply = connect()?.call_raw(&request)?;
            println!("{reply}");
            let ok = serde_json::from_str::<Reply>(&reply).is_ok_and(|r| r.ok);
            return Ok(if ok { Ok(()) } else { Err(Refused) });
        }
        Command::Show { what, address } => Request::new(Cmd::Query(match what {
            What::Tables => Query::ShowTables,
            What::Paths => Query::ShowPaths,
            What::Eips => Query::ShowEips(ShowEips { address }),
            What::Spec => Query::ShowSpec,
        })),
        Command::Stats => Request::new(Cmd::Query(Query::Stats)),
        Command::AddEip {
            address,
            region,
            backend,
        } => change(Op::AddEip(AddEip {
            eip: EipSpec {
                address,
                region,
                backend,
                services: Vec::new(),
            },
        })),
        Command::UpdateEip {
            address,
            region,
            backend,
            no_backend,
        } => change(Op::UpdateEip(UpdateEip {
            address,
            region,
            backend: if no_backend {
                Some(None)
            } else {
                backend.map(Some)
            },
            services: None,
        })),
        Command::RemoveEip { address } => change(Op::RemoveEip(RemoveEip { address })),
        Command::AddService {
            eip,
            service,
            backends,
        } => {
            let (protocol, port) = args::service(&service).map_err(anyhow::Error::msg)?;
            let backends = backends
                .iter()
                .map(|b| backend_spec(b))
                .collect::<Result<Vec<_>>>()?;
            change(Op::AddService(AddService {
                eip,
                service: ServiceSpec {
                    protocol,
                    port,
                    backends,
                },
            }))
        }
        Command::RemoveService { eip, service } => {
            let (protocol, port) = args::service(&service).map_err(anyhow::Error::msg)?;
            change(Op::RemoveService(ServiceRef {
                eip,
                protocol,
                port,
            }))
        }
        Command::AddBackend {
            eip,
            service,
            backend,
        } => {
            let (protocol, port) = args::service(&service).map_err(anyhow::Error::msg)?;
            change(Op::AddBackend(AddBackend {
                eip,
                protocol,
                port,
                backend: backend_spec(&backend)?,
            }))
        }
        Command::UpdateBackend {
            eip,
            service,
            backend,
            weight,
        } => {
            let r = backend_ref(eip, &service, &backend)?;
            change(Op::UpdateBackend(UpdateBackend {
                eip: r.eip,
                protocol: r.protocol,
                port: r.port,
                address: r.address,
                backend_port: r.backend_port,
                weight,
            }))
        }
        Command::DrainBackend {
            eip,
            service,
            backend,
        } => change(Op::DrainBackend(backend_ref(eip, &service, &backend)?)),
        Command::RemoveBackend {
            eip,
            service,
            backend,
        } => change(Op::RemoveBackend(backend_ref(eip, &service, &backend)?)),
        Command::AddPath {
            name,
            region,
            port,
            next_hop_mac,
            next_hop,
            source,
            destination,
            mtu,
            weight,
            state,
        } => change(Op::AddPath(AddPath {
            path: PathSpec {
                name,
                region,
                port,
                next_hop_mac,
                next_hop,
                source,
                destination,
                mtu,
                weight,
                state: match state {
                    StateArg::Up => PathState::Up,
                    StateArg::Down => PathState::Down,
                    StateArg::Disabled => PathState::Disabled,
                },
            },
        })),
        Command::UpdatePath {
            name,
            region,
            port,
            next_hop_mac,
            next_hop,
            source,
            default_source,
            destination,
            default_destination,
            mtu,
            weight,
        } => change(Op::UpdatePath(UpdatePath {
            name,
            region,
            port,
            next_hop_mac: match (next_hop_mac, next_hop) {
                (Some(mac), _) => Some(Some(mac)),
                (None, Some(_)) => Some(None),
                (None, None) => None,
            },
            next_hop: next_hop.map(Some),
            source: if default_source {
                Some(None)
            } else {
                source.map(Some)
            },
            destination: if default_destination {
                Some(None)
            } else {
                destination.map(Some)
            },
            mtu,
            weight,
        })),
        Command::RemovePath { name } => change(Op::RemovePath(PathRef { name })),
        Command::SetPathAdmin { name, admin } => change(Op::SetPathAdmin(SetPathAdmin {
            name,
            admin: match admin {
                AdminArg::Enabled => Admin::Enabled,
                AdminArg::Disabled => Admin::Disabled,
            },
        })),
        Command::Apply { file, dry_run } => {
            let mut request = ops_file(&file, dry_run)?;
            request.if_version = cli.if_version;
            request
        }
    };
    let reply = connect()?.call(&request)?;
    Ok(print_reply(&reply, cli.json))
}

/// Prints a reply; an error reply goes to stderr and yields [`Refused`].
fn print_reply(reply: &Reply, json: bool) -> Result<(), Refused> {
    if json {
        println!("{}", reply.to_line().trim_end());
    }
    match &reply.error {
        Some(e) => {
            eprintln!(
                "eipctl: {} ({}), table version {}",
                e.message, e.code, reply.version
            );
            Err(Refused)
        }
        None => {
            if !json {
                print!("{}", render::reply(reply));
            }
            Ok(())
        }
    }
}

fn backend_spec(text: &str) -> Result<BackendSpec> {
    let (address, port, weight) = args::backend(text).map_err(anyhow::Error::msg)?;
    Ok(BackendSpec {
        address,
        port,
        weight: weight.unwrap_or(1),
    })
}

fn backend_ref(eip: IpAddr, service: &str, backend: &str) -> Result<BackendRef> {
    let (protocol, port) = args::service(service).map_err(anyhow::Error::msg)?;
    let (address, backend_port, weight) = args::backend(backend).map_err(anyhow::Error::msg)?;
    if weight.is_some() {
        bail!("{backend:?}: a weight does not belong here (update-backend takes --weight)");
    }
    Ok(BackendRef {
        eip,
        protocol,
        port,
        address,
        backend_port,
    })
}

/// A transaction (or, with `dry_run`, a validation) from a JSON file, checked
/// here with the daemon's own parser so that mistakes are reported before
/// anything is sent.
fn ops_file(path: &Path, dry_run: bool) -> Result<Request> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let ops = match value {
        serde_json::Value::Array(ops) => ops,
        serde_json::Value::Object(mut o) if o.contains_key("ops") => match o.remove("ops") {
            Some(serde_json::Value::Array(ops)) => ops,
            _ => bail!("{}: \"ops\" must be an array", path.display()),
        },
        op @ serde_json::Value::Object(_) => vec![op],
        _ => bail!(
            "{}: expected an array of ops, {{\"ops\": [...]}}, or one op",
            path.display()
        ),
    };
    let cmd = if dry_run { "validate" } else { "transaction" };
    let line = serde_json::json!({ "cmd": cmd, "ops": ops }).to_string();
    api::Request::parse(line.as_bytes())
        .map_err(|e| anyhow::anyhow!("{}: {} ({})", path.display(), e.message, e.code))
}

fn validate(config: &Path, json: bool) -> Result<()> {
    let (tables, unresolved) = config::load_for_check(config)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report::summary_json(&tables))?
        );
    } else {
        println!("{}: valid", config.display());
        print!("{}", report::summary_text(&tables));
        for a in unresolved {
            println!("  next hop {a}: MAC to be learned from the neighbour table by `eipd run`");
        }
    }
    Ok(())
}

/// Redraws path health and per-EIP rates every `interval_ms`.
fn watch(
    mut client: Client,
    interval_ms: u64,
    count: Option<u64>,
    top: usize,
) -> Result<Result<(), Refused>> {
    let mut view = render::Watch::new(top);
    let interval = Duration::from_millis(interval_ms.max(50));
    let mut frame = 0u64;
    loop {
        let paths = client.call(&Request::new(Cmd::Query(Query::ShowPaths)))?;
        let Some(api::Data::Paths { paths: list }) = &paths.data else {
            return Ok(print_reply(&paths, false));
        };
        let stats = client.call(&Request::new(Cmd::Query(Query::Stats)))?;
        let counters = match &stats.data {
            Some(api::Data::Stats { stats }) => Some(stats),
            _ => None,
        };
        let body = view.frame(paths.version, list, counters);
        // Home, clear, redraw: the frame replaces the previous one in place.
        let mut out = std::io::stdout().lock();
        write!(
            out,
            "\x1b[H\x1b[2Jeipctl watch, every {} ms\n{body}",
            interval.as_millis()
        )?;
        out.flush()?;
        frame += 1;
        if count.is_some_and(|c| frame >= c) {
            return Ok(Ok(()));
        }
        std::thread::sleep(interval);
    }
}
