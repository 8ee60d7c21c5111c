//! [`ManifestError`]: one error about a manifest, located by file, line and column,
//! and the byte-offset → line/column mapping that locates it.
//!
//! Errors render as compilers print them, `FILE:LINE:COLUMN: message`, followed by
//! the offending source line with a caret under the offending key or value.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// What went wrong, for callers that branch on it (the CLI picks exit codes and hints).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No manifest at the given path.
    NotFound,
    /// The manifest exists but could not be read (permissions, not UTF-8, …).
    Io,
    /// The file is not valid TOML.
    Syntax,
    /// Valid TOML but not a manifest: an unknown key, a missing key, a wrong type.
    Schema,
    /// A key holds a value Wisp refuses: a bad name, source, kind, limit, env var or route.
    Invalid,
    /// Two routes could answer the same request.
    Conflict,
}

/// An error in (or about) a manifest file.
///
/// `line` and `column` are 1-based (the column counts characters, as rustc does);
/// both are 0 when the error is about the file as a whole (missing, unreadable).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub kind: ErrorKind,
    /// The message alone, without location or excerpt.
    pub message: String,
    /// The offending source line and the caret under it, when there is a location.
    pub excerpt: Option<Excerpt>,
}

/// The source line an error points into, and where on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Excerpt {
    /// The line as written (without its line break).
    pub text: String,
    /// How many characters the caret covers (at least 1), starting at the error's column.
    pub width: usize,
}

impl ManifestError {
    /// An error about the whole file, with no position in it.
    pub(crate) fn whole_file(file: &Path, kind: ErrorKind, message: String) -> ManifestError {
        ManifestError {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            kind,
            message,
            excerpt: None,
        }
    }

    /// An error at byte range `span` of `text`, the contents of `file`.
    pub(crate) fn at(
        file: &Path,
        text: &str,
        span: Range<usize>,
        kind: ErrorKind,
        message: String,
    ) -> ManifestError {
        let (line, column, excerpt) = locate(text, span);
        ManifestError {
            file: file.to_path_buf(),
            line,
            column,
            kind,
            message,
            excerpt,
        }
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            return f.write_str(&self.message);
        }
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )?;
        if let Some(excerpt) = &self.excerpt {
            let number = self.line.to_string();
            let pad = " ".repeat(number.len());
            let indent = " ".repeat(self.column - 1);
            write!(
                f,
                "\n{pad} |\n{number} | {}\n{pad} | {indent}{}",
                excerpt.text,
                "^".repeat(excerpt.width)
            )?;
        }
        Ok(())
    }
}

/// Maps a byte span to a 1-based line and character column, and the excerpt to show.
/// Spans past the end (toml reports "unexpected end of file" there) clamp to the end.
fn locate(text: &str, span: Range<usize>) -> (usize, usize, Option<Excerpt>) {
    let mut start = span.start.min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line = text[..start].matches('\n').count() + 1;
    let column = text[line_start..start].chars().count() + 1;
    let raw_line = text[line_start..line_end].trim_end_matches('\r');
    let end = span.end.clamp(start, line_start + raw_line.len());
    let width = text.get(start..end).map_or(0, |s| s.chars().count()).max(1);
    let excerpt = (!raw_line.trim().is_empty() || start < text.len()).then(|| Excerpt {
        // Tabs would shift the caret; show them as one space each.
        text: raw_line.replace('\t', " "),
        width,
    });
    (line, column, excerpt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_are_one_based_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        let start = text.find('=').unwrap();
        assert_eq!(locate(text, start..start + 1).0, 1);
        let second = text.rfind('=').unwrap();
        let (line, column, excerpt) = locate(text, second..second + 1);
        assert_eq!((line, column), (2, 4));
        assert_eq!(excerpt.unwrap().text, "bé = \"x\"");
    }

    #[test]
    fn renders_like_a_compiler() {
        let text = "[app]\nnmae = \"x\"\n";
        let err = ManifestError::at(
            Path::new("wisp.toml"),
            text,
            6..10,
            ErrorKind::Schema,
            "unknown key `nmae` in [app]; expected `name`".into(),
        );
        assert_eq!((err.line, err.column), (2, 1));
        assert_eq!(
            err.to_string(),
            "wisp.toml:2:1: unknown key `nmae` in [app]; expected `name`\n  |\n2 | nmae = \"x\"\n  | ^^^^"
        );
    }

    #[test]
    fn spans_at_the_end_clamp() {
        let (line, column, _) = locate("x = [1,", 7..7);
        assert_eq!((line, column), (1, 8));
        let (line, column, excerpt) = locate("", 0..0);
        assert_eq!((line, column), (1, 1));
        assert!(excerpt.is_none());
    }

    #[test]
    fn whole_file_errors_are_just_the_message() {
        let err = ManifestError::whole_file(
            Path::new("x/wisp.toml"),
            ErrorKind::NotFound,
            "no wisp.toml in x: create one, see docs/manifest.md".into(),
        );
        assert_eq!(err.to_string(), err.message);
    }
}
