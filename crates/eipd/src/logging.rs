//! Logs: `tracing` events with levels, written as human lines, JSON lines, or to
//! the systemd journal. Nothing logs on the packet path: workers count, the
//! control thread and its tasks log.
//!
//! The human format starts each line with the wall-clock time in seconds since
//! the Unix epoch with milliseconds, so scripts can correlate events (a path
//! going down) with their own clocks: `1764000000.123  WARN path bb1: up -> down`.

use anyhow::{Context, Result};
use std::time::{SystemTime, UNIX_EPOCH};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::EnvFilter;

/// Where and how logs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// The journal when started by systemd with its stderr on the journal
    /// (`JOURNAL_STREAM`), else human lines.
    Auto,
    /// One line per event on stderr.
    Human,
    /// One JSON object per line on stderr.
    Json,
    /// Native systemd journal entries, with fields.
    Journald,
}

/// Seconds since the Unix epoch with milliseconds.
struct EpochMillis;

impl FormatTime for EpochMillis {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        write!(w, "{}.{:03}", t.as_secs(), t.subsec_millis())
    }
}

/// Installs the global subscriber. `level` is an `EnvFilter` directive such as
/// `info` or `info,audit=info,eipd=debug`; `RUST_LOG` wins when set.
///
/// # Errors
/// A bad filter, or the journal not reachable with `--log-format journald`.
pub fn init(format: LogFormat, level: &str) -> Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::try_new(v).context("RUST_LOG")?,
        _ => EnvFilter::try_new(level).with_context(|| format!("--log-level {level:?}"))?,
    };
    let format = match format {
        LogFormat::Auto if std::env::var_os("JOURNAL_STREAM").is_some() => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Human,
        f => f,
    };
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let registry = tracing_subscriber::registry().with(filter);
    // A closed stderr must not kill the daemon: the writer ignores write errors.
    let stderr = || StderrNoPanic;
    let installed = match format {
        LogFormat::Journald => {
            let journal = tracing_journald::layer()
                .context("cannot reach the systemd journal (use --log-format human)")?
                .with_syslog_identifier("eipd".into());
            registry.with(journal).try_init()
        }
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_timer(EpochMillis)
                    .with_writer(stderr),
            )
            .try_init(),
        LogFormat::Human | LogFormat::Auto => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_timer(EpochMillis)
                    .with_target(false)
                    .with_ansi(false)
                    .with_writer(stderr),
            )
            .try_init(),
    };
    installed.context("installing the logger")
}

/// stderr for logs; a write to a closed stderr is dropped rather than a panic.
struct StderrNoPanic;

impl std::io::Write for StderrNoPanic {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

/// `println!` that never panics: the daemon's reports go to stdout, which may be
/// a pipe whose reader is gone (`eipd run ... | head -1`).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `print!` that never panics (see [`say!`]).
#[macro_export]
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($arg)*);
    }};
}
