//! What `eipd run` derives from its options and the first tables before anything
//! starts: the AF_XDP settings (ports by role, queues, CPUs, filter sizes).
//! Pure functions, tested without root.

use crate::run::RunOptions;
use anyhow::{bail, Result};
use eip_afxdp::{Accept, AfXdpConfig, IdlePolicy, PortConfig};
use eip_dataplane::tables::{PopSpec, PortRole};
use eip_dataplane::Tables;
use std::time::Duration;

/// The AF_XDP settings for the configured ports.
pub fn afxdp_config(tables: &Tables, spec: &PopSpec, opts: &RunOptions) -> Result<AfXdpConfig> {
    let mut ports = Vec::new();
    for (i, p) in spec.ports.iter().enumerate() {
        let Some(interface) = p.interface.clone() else {
            bail!("ports[{i}] ({:?}) has no `interface`: eipd run needs the kernel interface to bind to", p.name);
        };
        let accept = match p.role {
            PortRole::Internet => Accept::INTERNET,
            PortRole::Backbone => Accept::BACKBONE,
            PortRole::Both => Accept::BOTH,
        };
        ports.push(PortConfig {
            port: i as u16,
            interface,
            accept,
        });
    }
    let cpus = match &opts.cpus {
        Some(c) => c.clone(),
        None => default_cpus(opts.queues.len(), &allowed_cpus()),
    };
    let eips = max_eips(opts.max_eips, spec.pop.max_eips, tables.eips.len())?;
    Ok(AfXdpConfig {
        ports,
        queues: opts.queues.clone(),
        cpus,
        xdp_mode: opts.xdp_mode,
        bind_mode: opts.bind_mode,
        vxlan_port: tables.vxlan_port,
        max_eips: eips,
        idle: if opts.idle_sleep {
            IdlePolicy::Backoff {
                after_empty_polls: 1000,
                sleep: Duration::from_micros(100),
            }
        } else {
            IdlePolicy::BusyPoll
        },
        ..AfXdpConfig::default()
    })
}

/// The XDP filter maps' size: `--max-eips` (`flag`) over `[pop] max_eips`
/// (`file`, from the description in force) over [`default_max_eips`].
///
/// # Errors
/// When the chosen size is less than the EIPs to start with.
pub fn max_eips(flag: Option<u32>, file: Option<u32>, eips_at_start: usize) -> Result<u32> {
    let (max, from) = match (flag, file) {
        (Some(max), _) => (max, "--max-eips"),
        (None, Some(max)) => (max, "[pop] max_eips"),
        (None, None) => return Ok(default_max_eips(eips_at_start)),
    };
    if (max as usize) < eips_at_start {
        bail!(
            "{from} {max} is less than the {eips_at_start} EIPs of the description to start with"
        );
    }
    Ok(max)
}

/// The XDP filter maps' size when neither `--max-eips` nor `[pop] max_eips` is given: twice the EIPs
/// at start, at least 262144 (about 16 MB of kernel memory per address family).
pub fn default_max_eips(eips_at_start: usize) -> u32 {
    u32::try_from(eips_at_start)
        .unwrap_or(u32::MAX)
        .saturating_mul(2)
        .max(1 << 18)
}

/// The CPUs this process may run on (its affinity mask, e.g. from `taskset`).
fn allowed_cpus() -> Vec<usize> {
    core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect()
}

/// Worker i on the (i+1)-th of the `allowed` CPUs, wrapping, so that with more
/// than one CPU the first one is left to the kernel and the control thread.
fn default_cpus(workers: usize, allowed: &[usize]) -> Vec<usize> {
    let mut allowed = allowed.to_vec();
    allowed.sort_unstable();
    if allowed.is_empty() {
        return Vec::new();
    }
    (0..workers)
        .map(|i| allowed[(i + 1) % allowed.len()])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_leave_the_first_allowed_cpu_to_the_kernel() {
        assert_eq!(default_cpus(1, &[0, 1]), vec![1]);
        assert_eq!(default_cpus(2, &[3, 2, 1]), vec![2, 3]);
        // More workers than CPUs: wrap around.
        assert_eq!(default_cpus(3, &[4, 5]), vec![5, 4, 5]);
        assert_eq!(default_cpus(1, &[7]), vec![7]);
        assert!(default_cpus(2, &[]).is_empty());
    }

    #[test]
    fn the_flag_overrides_the_file_and_neither_may_be_below_the_eips() {
        assert_eq!(max_eips(Some(500), Some(300), 100).unwrap(), 500);
        assert_eq!(max_eips(Some(200), Some(300), 100).unwrap(), 200);
        assert_eq!(max_eips(None, Some(300), 100).unwrap(), 300);
        assert_eq!(max_eips(None, None, 100).unwrap(), default_max_eips(100));
        assert_eq!(default_max_eips(1_000_000), 2_000_000);
        let err = max_eips(Some(50), Some(300), 100).unwrap_err().to_string();
        assert!(
            err.starts_with("--max-eips 50 is less than the 100 EIPs"),
            "{err}"
        );
        let err = max_eips(None, Some(50), 100).unwrap_err().to_string();
        assert!(err.starts_with("[pop] max_eips 50 is less than"), "{err}");
    }

    #[test]
    fn ports_map_to_roles_and_need_an_interface() {
        const EXAMPLE: &str = include_str!("../../../docs/example-pop.toml");
        let mut spec = eip_control::config::parse(EXAMPLE, "example-pop.toml".as_ref()).unwrap();
        let tables = Tables::build(&spec, 1).unwrap();
        let opts = RunOptions::for_tests(vec![0, 1]);
        let config = afxdp_config(&tables, &spec, &opts).unwrap();
        assert_eq!(config.ports.len(), 2);
        assert_eq!(config.ports[0].interface, "eip-inet");
        assert_eq!(config.ports[0].accept, Accept::INTERNET);
        assert_eq!(config.ports[1].accept, Accept::BACKBONE);
        assert_eq!(config.queues, vec![0, 1]);
        assert_eq!(config.vxlan_port, 4789);
        assert!(config.max_eips >= 1 << 16);

        spec.ports[1].interface = None;
        let err = afxdp_config(&tables, &spec, &opts).unwrap_err().to_string();
        assert!(
            err.contains("ports[1]") && err.contains("interface"),
            "{err}"
        );
    }
}
