//! The command line's shape: help for everything, abbreviations.

use super::{abbrev, Cli, Command};
use clap::{CommandFactory, Parser};

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("eipctl").chain(args.iter().copied()))
}

#[test]
fn the_command_line_is_consistent() {
    Cli::command().debug_assert();
}

/// `eipctl help <cmd>` documents every subcommand and every argument.
#[test]
fn every_subcommand_and_argument_has_help() {
    let cli = Cli::command();
    let mut missing = Vec::new();
    for arg in cli.get_arguments() {
        if arg.get_help().is_none() {
            missing.push(format!("--{}", arg.get_id()));
        }
    }
    for sub in cli.get_subcommands() {
        if sub.get_about().is_none() {
            missing.push(sub.get_name().to_string());
        }
        for arg in sub.get_arguments() {
            let builtin = matches!(arg.get_id().as_str(), "help" | "version");
            if !builtin && arg.get_help().is_none() {
                missing.push(format!("{} {}", sub.get_name(), arg.get_id()));
            }
            // Flags take no value; their true/false are no choice to document.
            let values = match arg.get_action().takes_values() {
                true => arg.get_possible_values(),
                false => Vec::new(),
            };
            for value in values {
                if value.get_help().is_none() {
                    missing.push(format!(
                        "{} {}={}",
                        sub.get_name(),
                        arg.get_id(),
                        value.get_name()
                    ));
                }
            }
        }
    }
    assert!(missing.is_empty(), "without help: {missing:?}");
    let help = Cli::command().render_long_help().to_string();
    assert!(help.contains("Exit status:") && help.contains("3  the daemon cannot be reached"));
}

#[test]
fn unique_prefixes_name_their_subcommand() {
    assert!(matches!(
        parse(&["sh", "paths"]).unwrap().command,
        Command::Show { .. }
    ));
    assert!(matches!(parse(&["st"]).unwrap().command, Command::Stats));
    assert!(matches!(
        parse(&["ex", "icmp", "198.51.100.7", "192.0.2.10"])
            .unwrap()
            .command,
        Command::Explain { .. }
    ));
    assert!(matches!(
        parse(&["--json", "set", "p", "enabled"]).unwrap().command,
        Command::SetPathAdmin { .. }
    ));
    // A full name wins even where it is also a prefix of another.
    assert!(matches!(
        parse(&["show", "eips"]).unwrap().command,
        Command::Show { .. }
    ));
}

#[test]
fn ambiguous_prefixes_list_every_candidate() {
    let cmd = Cli::command();
    let ambiguous = |prefix: &str| {
        let e = parse(&[prefix]).err().expect(prefix);
        assert_eq!(e.exit_code(), 2);
        abbrev::ambiguous(&cmd, &e)
    };
    assert_eq!(
        ambiguous("u").as_deref(),
        Some("'u' is ambiguous: it starts update-eip, update-backend, update-path")
    );
    assert_eq!(
        ambiguous("s").as_deref(),
        Some("'s' is ambiguous: it starts show, stats, set-path-admin")
    );
    let add = ambiguous("add").unwrap();
    assert!(
        add.contains("add-eip, add-service, add-backend, add-path"),
        "{add}"
    );
    // Not a prefix of anything: clap's own message stands.
    assert_eq!(ambiguous("frobnicate"), None);
}

#[test]
fn limit_takes_rates_with_units_and_refuses_nonsense() {
    let Command::Limit {
        address,
        in_bps,
        in_pps,
        out_bps,
        out_pps,
    } = parse(&[
        "limit",
        "192.0.2.10",
        "--in-bps",
        "100Mbit",
        "--out-pps",
        "5k",
    ])
    .unwrap()
    .command
    else {
        panic!("not limit")
    };
    assert_eq!(address, Some("192.0.2.10".parse().unwrap()));
    assert_eq!(
        (in_bps, in_pps, out_bps, out_pps),
        (Some(100_000_000), None, None, Some(5000))
    );
    assert!(matches!(
        parse(&["limit", "--in-pps", "0"]).unwrap().command,
        Command::Limit {
            address: None,
            in_pps: Some(0),
            ..
        }
    ));
    assert!(parse(&["limit", "192.0.2.10", "--in-bps", "fast"]).is_err());
}
