//! Subcommand abbreviations. clap's `infer_subcommands` accepts any unique
//! prefix (`eipctl sh paths`); an ambiguous one it reports as unrecognized,
//! suggesting names by spelling similarity, which may leave out some of the
//! commands the prefix could mean and add others. Here an ambiguous prefix is
//! reported with exactly the commands it starts.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, Parser};

/// Parses the command line like `C::parse()` (exit status 2 on bad usage),
/// with ambiguous subcommand prefixes reported as such.
pub fn parse<C: Parser + CommandFactory>() -> C {
    match C::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let mut cmd = C::command();
            match ambiguous(&cmd, &e) {
                Some(message) => cmd.error(ErrorKind::InvalidSubcommand, message).exit(),
                None => e.exit(),
            }
        }
    }
}

/// The message for `error` when it is about a prefix that starts several
/// subcommands of `cmd`.
pub fn ambiguous(cmd: &clap::Command, error: &clap::Error) -> Option<String> {
    if error.kind() != ErrorKind::InvalidSubcommand {
        return None;
    }
    let Some(ContextValue::String(given)) = error.get(ContextKind::InvalidSubcommand) else {
        return None;
    };
    let candidates: Vec<&str> = cmd
        .get_subcommands()
        .map(|s| s.get_name())
        .filter(|name| name.starts_with(given.as_str()))
        .collect();
    (candidates.len() > 1).then(|| {
        format!(
            "'{given}' is ambiguous: it starts {}",
            candidates.join(", ")
        )
    })
}
