//! Places in the configuration text: byte offsets (what parsers give) as the
//! line and column an editor shows, and a line with a caret under a span.

use std::fmt;
use std::ops::Range;

/// A place in a text file as editors count: line and column from 1, the column
/// in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// The largest character boundary of `text` at or before `offset`.
fn boundary(text: &str, offset: usize) -> usize {
    let mut o = offset.min(text.len());
    while !text.is_char_boundary(o) {
        o -= 1;
    }
    o
}

/// Byte offset of the start of the line `offset` is on.
fn line_start(text: &str, offset: usize) -> usize {
    text[..offset].rfind('\n').map_or(0, |i| i + 1)
}

impl Position {
    /// The position of byte `offset` of `text` (clamped to the text).
    pub fn of(text: &str, offset: usize) -> Position {
        let offset = boundary(text, offset);
        let start = line_start(text, offset);
        Position {
            line: text[..start].matches('\n').count() + 1,
            column: text[start..offset].chars().count() + 1,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// The line a span starts on, with a caret under the span (to the end of that
/// line), printed as rustc prints one:
///
/// ```text
///   7 | vtep = 198.51.100.1
///     |        ^
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    pub line: usize,
    /// The line, without its end of line.
    pub text: String,
    /// What goes before the caret: the line's characters up to the span, each
    /// as a space, or a tab where the line has one, so that the caret lines up.
    indent: String,
    /// Carets: one per character of the span on this line, at least one.
    width: usize,
}

impl Snippet {
    /// The snippet of `span` (byte offsets) of `text`.
    pub fn of(text: &str, span: Range<usize>) -> Snippet {
        let start = boundary(text, span.start);
        let first = line_start(text, start);
        let end_of_line = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line = text[first..end_of_line].trim_end_matches('\r');
        let end = boundary(text, span.end).clamp(start, first + line.len());
        Snippet {
            line: Position::of(text, start).line,
            text: line.to_string(),
            indent: text[first..start]
                .chars()
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect(),
            width: text[start..end].chars().count().max(1),
        }
    }
}

impl fmt::Display for Snippet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let number = self.line.to_string();
        let gutter = " ".repeat(number.len());
        writeln!(f, " {number} | {}", self.text)?;
        write!(f, " {gutter} | {}{}", self.indent, "^".repeat(self.width))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[pop]\nname = \"é\"\n\tvtep = 198\n";

    #[test]
    fn positions_count_lines_and_characters_from_one() {
        assert_eq!(Position::of(TEXT, 0), Position { line: 1, column: 1 });
        let quote = TEXT.find('"').unwrap();
        assert_eq!(Position::of(TEXT, quote).to_string(), "2:8");
        // After the two-byte é: column counts characters, not bytes.
        assert_eq!(Position::of(TEXT, quote + 3).to_string(), "2:10");
        // Inside é: the character it is part of.
        assert_eq!(Position::of(TEXT, quote + 2).to_string(), "2:9");
        assert_eq!(Position::of(TEXT, TEXT.len()).to_string(), "4:1");
        assert_eq!(Position::of(TEXT, 1000).to_string(), "4:1");
    }

    #[test]
    fn the_caret_is_under_the_span_on_its_line() {
        let at = TEXT.find("198").unwrap();
        let s = Snippet::of(TEXT, at..at + 3);
        assert_eq!(s.to_string(), " 3 | \tvtep = 198\n   | \t       ^^^");
        // A span past the end of its line is cut there; an empty span gets one caret.
        let s = Snippet::of(TEXT, at..TEXT.len());
        assert!(s.to_string().ends_with("^^^"), "{s}");
        assert!(Snippet::of(TEXT, at..at).to_string().ends_with(" ^"));
        let s = Snippet::of("a = 1\r\nb = \r\n", 11..11);
        assert_eq!(s.to_string(), " 2 | b = \n   |     ^");
    }
}
