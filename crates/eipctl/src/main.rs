//! `eipctl`: the operator's client. Talks to `eipd`'s control socket
//! (`docs/control-socket.md`), and validates configurations offline.
//!
//! Human-readable output by default, `--json` for the daemon's raw reply.
//! Subcommands may be abbreviated to a unique prefix. The exit status is 0 on
//! success, 1 when the daemon refused the request (its message on stderr), 2 for
//! bad input or usage, 3 when the daemon cannot be reached (`exit`).

#![forbid(unsafe_code)]

mod abbrev;
mod acl;
mod args;
mod cli;
#[cfg(test)]
mod cli_tests;
mod exit;
mod flow;
mod render;

use anyhow::{bail, Context, Result};
use cli::{AdminArg, Cli, Command, ProtoArg, StateArg, What};
use eip_control::api::{
    self, AddBackend, AddEip, AddPath, AddService, Admin, BackendRef, Command as Cmd, Op, PathRef,
    Query, RemoveEip, Reply, Request, ServiceRef, SetAcl, SetLimits, SetPathAdmin, ShowAcl,
    ShowEips, TraceFilter, TraceProtocol, TraceRequest, UpdateBackend, UpdateEip, UpdatePath,
};
use eip_control::client::Client;
use eip_control::{config, report};
use eip_dataplane::tables::spec::{BackendSpec, EipSpec, LimitsSpec, PathSpec, ServiceSpec};
use eip_dataplane::tables::PathState;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// A refused request: reported on stderr, exit status [`exit::REFUSED`].
struct Refused;

fn main() -> ExitCode {
    let cli: Cli = abbrev::parse();
    match run(cli) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(Refused)) => ExitCode::from(exit::REFUSED),
        Err(e) => exit::fail(&e),
    }
}

fn run(cli: Cli) -> Result<Result<(), Refused>> {
    let timeout = Duration::from_secs(cli.timeout.max(1));
    let connect = || Client::connect(&cli.socket, timeout).map_err(anyhow::Error::from);
    let change = |op: Op| Request {
        if_version: cli.if_version,
        blackhole_ok: cli.blackhole_ok,
        command: Cmd::Change(op),
    };
    let request = match cli.command {
        Command::Validate { config } => return validate(&config, cli.json),
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
            What::Acl => Query::ShowAcl(ShowAcl {
                address: address.context("show acl needs the EIP's address")?,
            }),
            What::Spec => Query::ShowSpec,
            What::Bgp => Query::ShowBgp,
        })),
        Command::Stats => Request::new(Cmd::Query(Query::Stats)),
        Command::Drain => Request::new(Cmd::Drain),
        Command::Explain {
            protocol,
            src,
            dst,
            ident,
            mss,
            size,
        } => Request::new(Cmd::Query(Query::Explain(flow::explain(
            protocol, &src, &dst, ident, mss, size,
        )?))),
        Command::AddEip {
            address,
            region,
            backend,
        } => change(Op::AddEip(AddEip {
            eip: EipSpec::new(address, region, backend),
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
                    check: None,
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
        Command::Limit {
            address,
            in_bps,
            in_pps,
            out_bps,
            out_pps,
        } => change(Op::SetLimits(SetLimits {
            address,
            limits: Some(LimitsSpec {
                in_bps,
                in_pps,
                out_bps,
                out_pps,
            })
            .filter(|l| !l.is_empty()),
        })),
        Command::Acl {
            address,
            file,
            rules,
            clear,
        } => change(Op::SetAcl(SetAcl {
            address,
            acl: acl::spec(address, file.as_deref(), rules.as_deref(), clear)?,
        })),
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
            request.blackhole_ok = cli.blackhole_ok;
            request
        }
        Command::Reload { file, dry_run } => {
            // The daemon reads the file: give it a path that means the same there.
            let file = match file {
                Some(f) => Some(
                    std::path::absolute(&f)
                        .with_context(|| format!("cannot resolve {}", f.display()))?,
                ),
                None => None,
            };
            Request {
                if_version: cli.if_version,
                blackhole_ok: cli.blackhole_ok,
                command: Cmd::Reload(api::Reload { file, dry_run }),
            }
        }
        Command::Trace {
            eip,
            proto,
            src,
            dst,
            drop,
            count,
            seconds,
            snap,
            output,
        } => {
            let (src, src_port) = src.unwrap_or_default();
            let (dst, dst_port) = dst.unwrap_or_default();
            let file = std::path::absolute(&output)
                .with_context(|| format!("resolving {}", output.display()))?;
            let request = Request::new(Cmd::Trace(TraceRequest {
                filter: TraceFilter {
                    eip,
                    protocol: proto.map(|p| match p {
                        ProtoArg::Tcp => TraceProtocol::Tcp,
                        ProtoArg::Udp => TraceProtocol::Udp,
                        ProtoArg::Icmp => TraceProtocol::Icmp,
                    }),
                    src,
                    src_port,
                    dst,
                    dst_port,
                    drop,
                },
                count,
                seconds,
                snap,
                file,
            }));
            // The reply comes when the trace has ended.
            let timeout = timeout.max(Duration::from_secs(seconds.saturating_add(30)));
            let reply = Client::connect(&cli.socket, timeout)?.call(&request)?;
            return Ok(print_reply(&reply, cli.json));
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

fn validate(config: &Path, json: bool) -> Result<Result<(), Refused>> {
    let (tables, unresolved) = match config::load_for_check(config) {
        Ok(checked) => (checked.tables, checked.unresolved),
        Err(e @ config::ConfigError::Read { .. }) => return Err(e.into()),
        // Every problem, one per line with its place, then how many.
        Err(e) => {
            eprintln!("{e}");
            return Ok(Err(Refused));
        }
    };
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
    Ok(Ok(()))
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
