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

impl Diagnostic {
    /// A diagnostic for the byte range `span` of `text`.
    pub fn at(
        file: &str,
        text: &str,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Diagnostic {
        let start = span.start.min(text.len());
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line = text[..start].matches('\n').count() + 1;
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
