//! A diagnostic about a config file: where (file, line, column), what is
//! wrong, and the offending line with a caret under the spot.
//!
//! ```text
//! /etc/preforkd/preforkd.toml:12:11: unknown builtin 'ech0' (expected one of: echo, ...)
//!    12 | builtin = "ech0"
//!       |           ^^^^^^
//! ```

use std::fmt;
use std::ops::Range;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, as the user named it.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong, and what was expected.
    pub message: String,
    /// The text of the offending line.
    pub source_line: String,
    /// How many characters the caret underlines (at least 1).
    pub width: usize,
}

/// How many diagnostics are shown of a file with errors (by `check`, a
/// refused reload, a start that fails); the rest are counted in one line.
pub const SHOWN: usize = 20;

/// Where each line of a text starts, found once, so that turning a byte
/// offset into a line and column costs a binary search, not a scan of the
/// text before it: a file with many errors is checked in linear time.
#[derive(Debug, Clone)]
pub struct LineIndex {
    /// The byte offset of each line's first character; the first is 0.
    starts: Vec<usize>,
}

impl LineIndex {
    /// The index of `text`.
    pub fn new(text: &str) -> LineIndex {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { starts }
    }

    /// The 1-based line holding byte `offset`, and where that line starts.
    pub fn line_of(&self, offset: usize) -> (usize, usize) {
        let line = self.starts.partition_point(|&start| start <= offset);
        (line, self.starts[line.saturating_sub(1)])
    }
}

impl Diagnostic {
    /// A diagnostic for the byte range `span` of `text`.
    pub fn at(
        file: &str,
        text: &str,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic::at_indexed(file, text, &LineIndex::new(text), span, message)
    }

    /// As [`Diagnostic::at`], with the line index of `text` built already.
    pub fn at_indexed(
        file: &str,
        text: &str,
        lines: &LineIndex,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Diagnostic {
        let mut start = span.start.min(text.len());
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let (line, line_start) = lines.line_of(start);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let column = text[line_start..start].chars().count() + 1;
        let end = span.end.clamp(start, line_end);
        Diagnostic {
            file: file.to_string(),
            line,
            column,
            message: message.into(),
            source_line: text[line_start..line_end]
                .trim_end_matches('\r')
                .to_string(),
            width: text[start..end].chars().count().max(1),
        }
    }

    /// A diagnostic about the file as a whole (line 1, column 1, no excerpt).
    pub fn whole_file(file: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: file.to_string(),
            line: 1,
            column: 1,
            message: message.into(),
            source_line: String::new(),
            width: 1,
        }
    }

    /// The diagnostics to print of `all`: the first [`SHOWN`], then, if
    /// there are more, how many are left out.
    pub fn shown(all: &[Diagnostic]) -> (&[Diagnostic], usize) {
        let shown = &all[..all.len().min(SHOWN)];
        (shown, all.len() - shown.len())
    }

    /// The first line alone: `file:line:column: message`.
    pub fn headline(&self) -> String {
        format!(
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.headline())?;
        if !self.source_line.is_empty() {
            let gutter = self.line.to_string().len();
            write!(
                f,
                "\n {:>gutter$} | {}\n {:>gutter$} | {}{}",
                self.line,
                self.source_line,
                "",
                " ".repeat(self.column - 1),
                "^".repeat(self.width)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_index_agrees_with_a_scan() {
        let text = "a\n\nbc\nd";
        let lines = LineIndex::new(text);
        for offset in 0..=text.len() {
            let line = text[..offset].matches('\n').count() + 1;
            let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
            assert_eq!(lines.line_of(offset), (line, start), "offset {offset}");
        }
    }

    #[test]
    fn points_at_the_span() {
        let text = "a = 1\nbuiltin = \"ech0\"\n";
        let start = text.find("\"ech0\"").unwrap();
        let d = Diagnostic::at("f.toml", text, start..start + 6, "unknown builtin");
        assert_eq!(d.headline(), "f.toml:2:11: unknown builtin");
        assert_eq!(
            d.to_string(),
            "f.toml:2:11: unknown builtin\n 2 | builtin = \"ech0\"\n   |           ^^^^^^"
        );
    }
}
