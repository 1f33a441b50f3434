//! `eipctl`: the operator's client. Talks to `eipd`'s control socket (a later
//! milestone); today it validates and describes configurations offline.

use anyhow::Result;
use clap::{Parser, Subcommand};
use eip_control::{config, report};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "eipctl", version, about = "Operate an anycast EIP data plane")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a configuration file and show the tables it builds.
    Validate {
        config: PathBuf,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Validate { config, json } => {
            let (_, tables) = config::load(&config)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report::summary_json(&tables))?
                );
            } else {
                println!("{}: valid", config.display());
                print!("{}", report::summary_text(&tables));
            }
        }
    }
    Ok(())
}
