//! The EIP list file (`[pop] eips_file`): one EIP per line, as the JSON object
//! the control socket's `add_eip` takes, for lists too long for TOML. The toml
//! crate parses a million `[[eips]]` tables (79 MB) in about 5.4 s on one
//! core; the same list as JSON lines loads in about 0.6 s, split over the
//! cores (`tests/measure_scale.rs`).
//!
//! Blank lines and lines starting with `#` are skipped. Errors are placed as
//! the TOML's are: `eips.jsonl:12:30: message`, with the line and a caret.

use super::source::{Position, Snippet};
use super::ConfigError;
use eip_dataplane::tables::spec::EipSpec;
use std::path::{Path, PathBuf};

/// Where a relative `eips_file` is: beside the configuration naming it.
pub(super) fn resolve(name: &Path, config: &Path) -> PathBuf {
    match config.parent() {
        Some(dir) if name.is_relative() => dir.join(name),
        _ => name.to_path_buf(),
    }
}

/// Reads and parses the EIP list file at `path`, in file order.
///
/// # Errors
/// [`ConfigError::Read`], or [`ConfigError::Syntax`] at the first line that is
/// not an EIP.
pub(super) fn load(path: &Path) -> Result<Vec<EipSpec>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Parses an EIP list (`origin` names it in errors), in file order, its lines
/// split over the available cores.
pub(super) fn parse(text: &str, origin: &Path) -> Result<Vec<EipSpec>, ConfigError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Below a few thousand lines a thread costs more than it saves.
    let parts = cores.min(text.len() / (256 * 1024) + 1);
    let chunks = split_at_lines(text, parts);
    let parsed: Vec<Result<Vec<EipSpec>, ChunkError>> = if chunks.len() == 1 {
        vec![parse_chunk(chunks[0])]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = chunks
                .iter()
                .map(|chunk| s.spawn(move || parse_chunk(chunk)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("an EIP list parser panicked"))
                .collect()
        })
    };
    let mut eips = Vec::with_capacity(parsed.iter().flatten().map(Vec::len).sum());
    let mut offset = 0;
    for (chunk, result) in chunks.iter().zip(parsed) {
        match result {
            Ok(list) => eips.extend(list),
            Err(e) => return Err(e.into_config_error(text, offset, origin)),
        }
        offset += chunk.len();
    }
    Ok(eips)
}

/// `text` cut into at most `parts` pieces of about equal length, each ending
/// at the end of a line (or of the text).
fn split_at_lines(text: &str, parts: usize) -> Vec<&str> {
    let mut chunks = Vec::with_capacity(parts);
    let mut rest = text;
    for left in (1..=parts).rev() {
        if left == 1 || rest.is_empty() {
            chunks.push(rest);
            break;
        }
        let target = rest.len() / left;
        let cut = rest[target..]
            .find('\n')
            .map_or(rest.len(), |i| target + i + 1);
        let (head, tail) = rest.split_at(cut);
        chunks.push(head);
        rest = tail;
    }
    chunks
}

/// The first bad line of a chunk: its byte offset in the chunk, the column
/// (from 1) serde_json gave, and its message.
struct ChunkError {
    line_offset: usize,
    column: usize,
    message: String,
}

impl ChunkError {
    /// The error placed in the whole text, whose chunk starts at `offset`.
    fn into_config_error(self, text: &str, offset: usize, origin: &Path) -> ConfigError {
        let start = offset + self.line_offset;
        let line = text[start..].split('\n').next().unwrap_or("");
        // serde_json counts columns in bytes; a character boundary is needed.
        let mut at = start + self.column.saturating_sub(1).min(line.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        ConfigError::Syntax {
            path: origin.to_path_buf(),
            position: Some(Position::of(text, at)),
            message: self.message,
            snippet: Some(Box::new(Snippet::of(text, at..at + 1))),
        }
    }
}

fn parse_chunk(chunk: &str) -> Result<Vec<EipSpec>, ChunkError> {
    let mut eips = Vec::with_capacity(chunk.len() / 64);
    let mut line_offset = 0;
    for raw in chunk.split_inclusive('\n') {
        let line = raw.trim_end_matches(['\n', '\r']);
        let body = line.trim_start();
        if !body.is_empty() && !body.starts_with('#') {
            match serde_json::from_str::<EipSpec>(line) {
                Ok(eip) => eips.push(eip),
                Err(e) => {
                    return Err(ChunkError {
                        line_offset,
                        column: e.column(),
                        message: format!("not an EIP: {e}"),
                    })
                }
            }
        }
        line_offset += raw.len();
    }
    Ok(eips)
}

/// The line (from 1) of the `k`-th EIP (from 0) of a list file, and the column
/// of `field`'s value on it when the line writes it; to place the table
/// builder's errors. `None` when the list has fewer EIPs.
pub(super) fn position_of(text: &str, k: usize, field: Option<&str>) -> Option<Position> {
    let (number, line) = text
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            let body = l.trim_start();
            !body.is_empty() && !body.starts_with('#')
        })
        .nth(k)?;
    let column = field
        .and_then(|f| {
            let key = line.find(&format!("\"{f}\""))?;
            let colon = key + line[key..].find(':')?;
            let value = line[colon + 1..].len() - line[colon + 1..].trim_start().len();
            Some(colon + 1 + value)
        })
        .unwrap_or(0);
    Some(Position {
        line: number + 1,
        column: line[..column].chars().count() + 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "# three EIPs\n\
{\"address\": \"203.0.113.1\", \"region\": \"beijing\", \"backend\": \"10.1.0.1\"}\n\
\n\
{\"address\": \"203.0.113.2\", \"region\": \"beijing\", \"backend\": \"10.1.0.2\"}\r\n\
   # an indented comment\n\
{\"address\": \"203.0.113.3\", \"region\": \"beijing\", \"services\": [{\"protocol\": \"tcp\", \"port\": 80, \"backends\": [{\"address\": \"10.1.0.9\"}]}]}";

    fn addresses(list: &[EipSpec]) -> Vec<String> {
        list.iter().map(|e| e.address.to_string()).collect()
    }

    #[test]
    fn lines_are_eips_in_order_and_comments_are_skipped() {
        let list = parse(LIST, Path::new("eips.jsonl")).unwrap();
        assert_eq!(
            addresses(&list),
            ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
        );
        assert_eq!(list[2].services[0].port, 80);
    }

    #[test]
    fn the_split_keeps_every_line_whole_and_in_order() {
        let text: String = (0..1000)
            .map(|i| {
                format!(
                    "{{\"address\": \"10.64.{}.{}\", \"region\": \"r\"}}\n",
                    i / 250,
                    i % 250
                )
            })
            .collect();
        for parts in [1, 2, 3, 7, 64] {
            let chunks = split_at_lines(&text, parts);
            assert!(chunks.len() <= parts);
            assert_eq!(chunks.concat(), text);
            assert!(chunks.iter().all(|c| c.is_empty() || c.ends_with('\n')));
        }
        assert_eq!(split_at_lines("", 4), [""]);
        assert_eq!(split_at_lines("no newline", 4).concat(), "no newline");
    }

    #[test]
    fn a_bad_line_is_reported_at_its_line_and_column_whichever_chunk_holds_it() {
        let good = "{\"address\": \"10.64.0.1\", \"region\": \"r\", \"backend\": \"10.1.0.1\"}\n";
        // Large enough to be split: the bad line lands in the last chunk.
        let mut text = good.repeat(20_000);
        text.push_str("{\"address\": \"10.64.0.300\", \"region\": \"r\"}\n");
        text.push_str(good);
        let err = parse(&text, Path::new("eips.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("eips.jsonl:20001:"),
            "placed at its line: {err}"
        );
        assert!(err.contains("not an EIP"), "{err}");
        assert!(err.contains("10.64.0.300"), "the line is shown: {err}");
        // An unknown field is refused, as in the TOML.
        let err = parse(
            "{\"address\": \"10.64.0.1\", \"region\": \"r\", \"bakend\": \"10.1.0.1\"}",
            Path::new("l"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("l:1:") && err.contains("unknown field `bakend`"),
            "{err}"
        );
    }

    #[test]
    fn entries_are_found_by_their_rank_among_eips() {
        let p = position_of(LIST, 1, Some("backend")).unwrap();
        assert_eq!(p.line, 4);
        let line = LIST.lines().nth(3).unwrap();
        assert_eq!(&line[p.column - 1..p.column + 10], "\"10.1.0.2\"}");
        assert_eq!(
            position_of(LIST, 2, None).unwrap(),
            Position { line: 6, column: 1 }
        );
        assert_eq!(position_of(LIST, 2, Some("backend")).unwrap().column, 1);
        assert!(position_of(LIST, 3, None).is_none());
    }

    #[test]
    fn a_relative_file_is_beside_the_configuration() {
        assert_eq!(
            resolve(Path::new("eips.jsonl"), Path::new("/etc/eipd/pop.toml")),
            Path::new("/etc/eipd/eips.jsonl")
        );
        assert_eq!(
            resolve(
                Path::new("/srv/eips.jsonl"),
                Path::new("/etc/eipd/pop.toml")
            ),
            Path::new("/srv/eips.jsonl")
        );
        assert_eq!(
            resolve(Path::new("eips.jsonl"), Path::new("pop.toml")),
            Path::new("eips.jsonl")
        );
    }
}
