//! Shell completions and man pages for `eipd` and `eipctl`, generated from their
//! clap definitions so they cannot drift from the options the binaries accept.
//!
//! Each binary adds [`Docs`] to its subcommands (`#[command(flatten)]`), which
//! gives it `completions SHELL` (a script on stdout) and the hidden
//! `generate-man DIR` that `packaging/gen.sh` runs to build the Debian package:
//! one section-8 page for the command and one per subcommand (`eipctl-show.8`),
//! as `git`'s are split.

#![forbid(unsafe_code)]

use clap::{Command, CommandFactory, Subcommand};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use clap_complete::Shell;

/// Manual section: system administration commands and daemons.
pub const MAN_SECTION: &str = "8";

/// The shells completions are made for (each documented, unlike
/// `clap_complete::Shell`'s values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShellArg {
    /// GNU Bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
    /// Elvish.
    Elvish,
    /// PowerShell.
    Powershell,
}

impl From<ShellArg> for Shell {
    fn from(s: ShellArg) -> Shell {
        match s {
            ShellArg::Bash => Shell::Bash,
            ShellArg::Zsh => Shell::Zsh,
            ShellArg::Fish => Shell::Fish,
            ShellArg::Elvish => Shell::Elvish,
            ShellArg::Powershell => Shell::PowerShell,
        }
    }
}

/// The subcommands every binary of the workspace gets.
#[derive(Debug, Clone, Subcommand)]
pub enum Docs {
    /// Print a shell completion script, e.g. `completions bash > /etc/bash_completion.d/NAME`
    /// (the Debian package installs them for bash, zsh and fish).
    Completions {
        /// The shell the script is for.
        #[arg(value_enum)]
        shell: ShellArg,
    },
    /// Write the man pages (section 8) of this command and its subcommands into DIR.
    #[command(hide = true)]
    GenerateMan {
        /// Created if missing.
        dir: PathBuf,
    },
}

impl Docs {
    /// Does what was asked for the binary whose CLI is `C`.
    ///
    /// # Errors
    /// Writing the script or a page failed.
    pub fn run<C: CommandFactory>(&self) -> io::Result<()> {
        match self {
            Docs::Completions { shell } => {
                completions(C::command(), (*shell).into(), &mut io::stdout())
            }
            Docs::GenerateMan { dir } => {
                for page in man_pages(C::command(), dir)? {
                    println!("{}", page.display());
                }
                Ok(())
            }
        }
    }
}

/// Writes the completion script of `cmd` for `shell`.
///
/// # Errors
/// Writing to `out` failed.
pub fn completions(mut cmd: Command, shell: Shell, out: &mut dyn Write) -> io::Result<()> {
    let name = cmd.get_name().to_string();
    // clap_complete panics on a write error; render to memory, then write.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    out.write_all(&script)?;
    out.flush()
}

/// Writes `NAME.8` and `NAME-SUBCOMMAND.8` for every visible subcommand (nested
/// ones too) into `dir`, and returns their paths in that order.
///
/// # Errors
/// `dir` could not be created or a page not written.
pub fn man_pages(cmd: Command, dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = cmd.disable_help_subcommand(true);
    // Building names each subcommand `parent-sub`, which becomes its page's title.
    cmd.build();
    let mut written = Vec::new();
    write_pages(&cmd, dir, &mut written)?;
    Ok(written)
}

fn write_pages(cmd: &Command, dir: &Path, written: &mut Vec<PathBuf>) -> io::Result<()> {
    let page = clap_mangen::Man::new(cmd.clone()).section(MAN_SECTION);
    written.push(page.generate_to(dir)?);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// A stand-in for a binary's CLI.
    #[derive(Parser)]
    #[command(name = "demo", version = "1.2.3 (abc1234)", about = "A demo daemon")]
    struct Cli {
        #[command(subcommand)]
        command: Cmd,
    }

    #[derive(Subcommand)]
    enum Cmd {
        /// Run it.
        Run {
            /// Its configuration.
            #[arg(long)]
            config: PathBuf,
        },
        /// Show a table.
        Show {
            #[command(subcommand)]
            what: What,
        },
        #[command(flatten)]
        Docs(Docs),
    }

    #[derive(Subcommand)]
    enum What {
        /// The tables.
        Tables,
    }

    #[test]
    fn one_page_per_visible_subcommand_in_section_8() {
        let dir = std::env::temp_dir().join(format!("eip-cli-docs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let pages = man_pages(Cli::command(), &dir).unwrap();
        let names: Vec<_> = pages
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "demo.8",
                "demo-run.8",
                "demo-show.8",
                "demo-show-tables.8",
                "demo-completions.8"
            ]
        );
        let main = std::fs::read_to_string(dir.join("demo.8")).unwrap();
        assert!(main.contains(".TH demo 8"), "{main}");
        assert!(main.contains("1.2.3 (abc1234)"), "{main}");
        assert!(main.contains("demo\\-run(8)"), "{main}");
        assert!(!main.contains("generate\\-man"), "hidden: {main}");
        let run = std::fs::read_to_string(dir.join("demo-run.8")).unwrap();
        assert!(run.contains("\\-\\-config") && run.contains("Its configuration"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn completion_scripts_name_the_subcommands() {
        for (shell, marker) in [
            (Shell::Bash, "complete -F"),
            (Shell::Zsh, "#compdef demo"),
            (Shell::Fish, "complete -c demo"),
        ] {
            let mut out = Vec::new();
            completions(Cli::command(), shell, &mut out).unwrap();
            let script = String::from_utf8(out).unwrap();
            assert!(script.contains(marker), "{shell}: {script}");
            // fish spells a long option `-l config`.
            assert!(
                script.contains("run") && script.contains("config"),
                "{shell}: {script}"
            );
        }
    }

    #[test]
    fn docs_subcommands_parse() {
        let cli = Cli::try_parse_from(["demo", "completions", "zsh"]).unwrap();
        assert!(matches!(
            cli.command,
            Cmd::Docs(Docs::Completions {
                shell: ShellArg::Zsh
            })
        ));
        let cli = Cli::try_parse_from(["demo", "generate-man", "/tmp/x"]).unwrap();
        assert!(matches!(cli.command, Cmd::Docs(Docs::GenerateMan { .. })));
        assert!(Cli::try_parse_from(["demo", "completions", "tcsh"]).is_err());
    }
}
