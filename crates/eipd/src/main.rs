//! `eipd`: the anycast EIP data plane daemon. A thin binary: the packet
//! pipeline is `eip-dataplane`, the AF_XDP driver `eip-afxdp`, the control plane
//! `eip-control`; this crate boots them, runs the production processor on the
//! workers, keeps the control thread and its tasks, and stops cleanly.

#![forbid(unsafe_code)]

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use eip_control::{config, replay, report};
use std::path::PathBuf;

mod logging;

mod bgp;
mod boot;
mod metrics_source;
mod notify;
mod processor;
mod publish;
mod run;
mod shutdown;
mod signals;
mod spawner;
mod stats_source;
mod tasks;
mod trace;

/// `eipd 0.1.0 (abc1234)`: the commit is recorded by `packaging/build-version.rs`.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("EIP_GIT_COMMIT"), ")");

#[derive(Parser)]
#[command(
    name = "eipd",
    version = VERSION,
    about = "Anycast EIP data plane: NAT + VXLAN at a POP"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `--from` of `eipd run`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FromArg {
    State,
    Config,
}

#[derive(Subcommand)]
enum Command {
    /// Run the production pipeline over a capture (pcap or pcapng) and write what it
    /// transmits, one pcap per port. Needs no root and no NIC.
    Replay {
        /// POP configuration (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Input capture, Ethernet: pcap or pcapng (told apart by the magic number).
        #[arg(long)]
        input: PathBuf,
        /// Directory for `<port-name>.pcap` outputs (created if missing).
        #[arg(long)]
        output_dir: PathBuf,
        /// Port the input frames arrived on (default: the Internet-facing port).
        #[arg(long)]
        input_port: Option<String>,
        /// Frames per batch, as a worker would pull them.
        #[arg(long, default_value_t = replay::DEFAULT_BATCH)]
        batch: usize,
        /// Also write every frame the pipeline dropped, as it arrived, to this pcapng
        /// file with its drop reason as the packet comment (tshark: frame.comment).
        #[arg(long, value_name = "FILE")]
        dropped: Option<PathBuf>,
        /// Print counters as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Validate a configuration and print what the tables hold.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Run the data plane on the configured interfaces with AF_XDP (needs root or
    /// CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF, CAP_PERFMON, CAP_IPC_LOCK). Stops on
    /// SIGINT/SIGTERM.
    Run {
        #[arg(long)]
        config: PathBuf,
        /// Device queues to serve, one pinned worker each (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "0")]
        queues: Vec<u32>,
        /// CPU for each worker, in queue order (default: queue i on CPU (i+1) mod CPUs).
        #[arg(long, value_delimiter = ',')]
        cpus: Option<Vec<usize>>,
        /// XDP attach mode: auto (native, else generic), native, generic.
        #[arg(long, default_value = "auto", value_parser = ["auto", "native", "generic"])]
        xdp_mode: String,
        /// AF_XDP bind mode: auto (zero-copy, else copy), zero-copy, copy.
        #[arg(long, default_value = "auto", value_parser = ["auto", "zero-copy", "copy"])]
        bind_mode: String,
        /// Sleep when idle instead of busy-polling (shared machines).
        #[arg(long)]
        idle_sleep: bool,
        /// Print a rate line every this many seconds.
        #[arg(long)]
        stats_every: Option<u64>,
        /// Most EIPs this daemon takes (the XDP filter maps are sized for it at
        /// start; a change beyond it is refused). Overrides `[pop] max_eips`;
        /// without either: twice the EIPs at start, at least 262144.
        #[arg(long)]
        max_eips: Option<u32>,
        /// State file: the last committed configuration; wins over --config when present.
        #[arg(long, default_value = eip_control::state::DEFAULT_STATE_FILE)]
        state: PathBuf,
        /// Path probe interval in milliseconds (10 or more).
        #[arg(long, default_value_t = 100)]
        probe_interval_ms: u64,
        /// A probe not answered within this many milliseconds is lost.
        #[arg(long, default_value_t = 500)]
        probe_timeout_ms: u64,
        /// Control socket (owner-only) that eipctl talks to.
        #[arg(long, default_value = eip_control::server::DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Serve Prometheus metrics on this address, e.g. 127.0.0.1:9477
        /// (GET /metrics; loopback only unless --metrics-any). Off by default.
        #[arg(long, value_name = "ADDR")]
        metrics: Option<std::net::SocketAddr>,
        /// Allow --metrics on a non-loopback address (the listener has no authentication).
        #[arg(long, requires = "metrics")]
        metrics_any: bool,
        /// When a state file exists: start from it (changes made through the
        /// socket survive restarts), or from --config, committed as the next
        /// version. Either way a difference between the two is logged.
        #[arg(long, value_enum, default_value = "state")]
        from: FromArg,
        /// Log format: auto (the journal under systemd, else human), human, json,
        /// journald.
        #[arg(long, value_enum, default_value = "auto")]
        log_format: logging::LogFormat,
        /// Log filter, e.g. `info`, `warn,audit=info`, `debug` (RUST_LOG wins).
        #[arg(long, default_value = "info")]
        log_level: String,
        /// Which EIPs get per-EIP series (4 each): none, all, or top:N by packets
        /// in (chosen at each scrape).
        #[arg(long, value_name = "none|all|top:N", default_value_t = eip_control::metrics::EipSeries::default())]
        metrics_eips: eip_control::metrics::EipSeries,
    },
    /// Shell completions and (hidden) man page generation.
    #[command(flatten)]
    Docs(eip_cli_docs::Docs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Replay {
            config,
            input,
            output_dir,
            input_port,
            batch,
            dropped,
            json,
        } => {
            let (_, tables) = config::load(&config)?;
            let port = match input_port {
                None => tables.internet_port,
                Some(name) => {
                    match tables.port_by_name(&name) {
                        Some(p) => p,
                        None => {
                            let known: Vec<_> =
                                tables.ports.iter().map(|p| p.name.as_str()).collect();
                            bail!("--input-port {name:?} is not a port of the configuration (ports: {})", known.join(", "));
                        }
                    }
                }
            };
            let outcome = replay::replay_files(
                &tables,
                &input,
                &output_dir,
                port,
                batch,
                dropped.as_deref(),
            )
            .with_context(|| format!("replaying {}", input.display()))?;
            if json {
                let mut v = report::counters_json(&tables, &outcome.counters);
                let written: serde_json::Map<String, serde_json::Value> = tables
                    .ports
                    .iter()
                    .zip(&outcome.written)
                    .map(|(p, n)| (p.name.clone(), serde_json::json!(n)))
                    .collect();
                v["frames"] = serde_json::json!(outcome.frames);
                v["written"] = serde_json::Value::Object(written);
                if let Some(path) = &dropped {
                    v["dropped_file"] = serde_json::json!({
                        "path": path.display().to_string(),
                        "frames": outcome.dropped,
                    });
                }
                crate::say!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                crate::say!(
                    "replayed {} frames from {}",
                    outcome.frames,
                    input.display()
                );
                for (p, n) in tables.ports.iter().zip(&outcome.written) {
                    crate::say!(
                        "  wrote {n:>8} frames to {}",
                        output_dir.join(format!("{}.pcap", p.name)).display()
                    );
                }
                if let Some(path) = &dropped {
                    crate::say!(
                        "  wrote {:>8} dropped frames to {}",
                        outcome.dropped,
                        path.display()
                    );
                }
                crate::say_raw!("{}", report::counters_text(&tables, &outcome.counters));
            }
        }
        Command::Run {
            config,
            queues,
            cpus,
            xdp_mode,
            bind_mode,
            idle_sleep,
            stats_every,
            state,
            socket,
            probe_interval_ms,
            probe_timeout_ms,
            metrics,
            metrics_any,
            from,
            log_format,
            log_level,
            metrics_eips,
            max_eips,
        } => {
            // Before anything is opened: see spawner.rs.
            spawner::start().context("starting the spawner thread")?;
            logging::init(log_format, &log_level)?;
            use eip_afxdp::{BindPreference, XdpModePreference};
            let opts = run::RunOptions {
                config,
                state,
                socket,
                queues,
                cpus,
                xdp_mode: match xdp_mode.as_str() {
                    "native" => XdpModePreference::Driver,
                    "generic" => XdpModePreference::Skb,
                    _ => XdpModePreference::Auto,
                },
                bind_mode: match bind_mode.as_str() {
                    "zero-copy" => BindPreference::ZeroCopy,
                    "copy" => BindPreference::Copy,
                    _ => BindPreference::Auto,
                },
                idle_sleep,
                stats_every: stats_every.map(std::time::Duration::from_secs),
                metrics,
                metrics_any,
                from: match from {
                    FromArg::State => eip_control::state::StartFrom::State,
                    FromArg::Config => eip_control::state::StartFrom::Config,
                },
                metrics_eips,
                max_eips,
                health: {
                    let h = eip_control::health::HealthConfig {
                        interval: std::time::Duration::from_millis(probe_interval_ms),
                        timeout: std::time::Duration::from_millis(probe_timeout_ms),
                        ..Default::default()
                    };
                    h.validate().map_err(|e| {
                        anyhow::anyhow!("--probe-interval-ms/--probe-timeout-ms: {e}")
                    })?;
                    h
                },
            };
            run::run(&opts)?;
        }
        Command::Check { config } => {
            let config::Checked {
                spec,
                tables,
                unresolved,
            } = match config::load_for_check(&config) {
                Ok(checked) => checked,
                Err(e @ config::ConfigError::Read { .. }) => return Err(e.into()),
                // Every problem, one per line with its place, then how many.
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(1);
                }
            };
            // The [bgp] section: the tables ignore it, `eipd run` checks it at start.
            let bgp = spec.bgp;
            if let Some(Err(e)) = bgp.as_ref().map(|b| b.validate()) {
                eprintln!("{}: [bgp]: {e}", config.display());
                std::process::exit(1);
            }
            crate::say!("{}: valid", config.display());
            crate::say_raw!("{}", report::summary_text(&tables));
            if let Some(b) = &bgp {
                crate::say!(
                    "  bgp: AS {}, {} neighbour(s), announces {} (BIRD 2 as eipd's child)",
                    b.local_as,
                    b.neighbors.len(),
                    b.prefixes
                        .iter()
                        .map(|p| p.prefix.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            for a in unresolved {
                crate::say!(
                    "  next hop {a}: MAC to be learned from the neighbour table by `eipd run`"
                );
            }
        }
        Command::Docs(docs) => docs.run::<Cli>()?,
    }
    Ok(())
}
