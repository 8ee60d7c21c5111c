//! Entry names and symlink targets as text: turns a zip entry name into a normalised relative
//! path, refusing any name that could land outside the function's directory, and resolves a
//! symlink target lexically from the link's own directory.
//!
//! Backslashes count as separators (zips made on Windows use them), so `a\..\..\x` is refused
//! like `a/../../x` and `lib\x.so` unpacks to `lib/x.so`.

use std::fmt;

/// The longest entry name (in bytes) accepted: well under Linux's `PATH_MAX` (4096) once the
/// function's own directory is prefixed.
const MAX_NAME_BYTES: usize = 2048;
/// The longest path component most Linux file systems accept.
const MAX_COMPONENT_BYTES: usize = 255;
/// The longest symlink target accepted: Linux's `PATH_MAX` less the NUL.
const MAX_TARGET_BYTES: usize = 4095;

/// Why an entry name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameProblem {
    Empty,
    Nul,
    Absolute,
    DrivePrefix,
    ParentDir,
    TooLong,
    /// Packing only: a file name with a backslash would unzip as a directory separator.
    Backslash,
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "has an empty name",
            Self::Nul => "contains a NUL byte",
            Self::Absolute => "has an absolute path",
            Self::DrivePrefix => "starts with a Windows drive prefix",
            Self::ParentDir => "escapes the function's directory",
            Self::TooLong => "has a name too long for the file system",
            Self::Backslash => "has a backslash in its name, which unzips as a directory separator",
        })
    }
}

/// A relative path inside the function's directory: components joined by `/`, none of them
/// empty, `.` or `..`. The empty path is the directory itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RelPath(String);

impl RelPath {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }
}

fn is_separator(c: char) -> bool {
    c == '/' || c == '\\'
}

fn has_drive_prefix(s: &str) -> bool {
    matches!(s.as_bytes(), [letter, b':', ..] if letter.is_ascii_alphabetic())
}

fn is_absolute(s: &str) -> bool {
    s.starts_with(is_separator) || has_drive_prefix(s)
}

/// Parses a zip entry name (a trailing separator, as directory entries have, is dropped).
pub(crate) fn parse_entry_name(name: &str) -> Result<RelPath, NameProblem> {
    if name.is_empty() {
        return Err(NameProblem::Empty);
    }
    if name.contains('\0') {
        return Err(NameProblem::Nul);
    }
    if name.starts_with(is_separator) {
        return Err(NameProblem::Absolute);
    }
    if has_drive_prefix(name) {
        return Err(NameProblem::DrivePrefix);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameProblem::TooLong);
    }
    let mut out = String::with_capacity(name.len());
    for component in name.split(is_separator) {
        match component {
            "" | "." => {}
            ".." => return Err(NameProblem::ParentDir),
            c if c.len() > MAX_COMPONENT_BYTES => return Err(NameProblem::TooLong),
            c => {
                if !out.is_empty() {
                    out.push('/');
                }
                out.push_str(c);
            }
        }
    }
    Ok(RelPath(out))
}

/// Why a symlink target was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkProblem {
    /// Empty, NUL, or too long.
    Malformed,
    /// Absolute, or resolves outside the function's directory.
    Outside,
    /// Goes through more symlinks than the kernel would follow (or loops).
    TooDeep,
}

/// The target as it will be written: backslashes become `/`, like in entry names.
pub(crate) fn normalize_target(target: &str) -> Result<String, LinkProblem> {
    if target.is_empty() || target.contains('\0') || target.len() > MAX_TARGET_BYTES {
        return Err(LinkProblem::Malformed);
    }
    if is_absolute(target) {
        return Err(LinkProblem::Outside);
    }
    Ok(target.replace('\\', "/"))
}

/// Resolves `target` lexically (no symlinks followed) from the link's directory `dir`;
/// `Outside` if a `..` climbs above the function's directory.
pub(crate) fn resolve_lexically<'a>(
    mut dir: Vec<&'a str>,
    target: &'a str,
) -> Result<Vec<&'a str>, LinkProblem> {
    if is_absolute(target) {
        return Err(LinkProblem::Outside);
    }
    for component in target.split(is_separator) {
        match component {
            "" | "." => {}
            ".." => {
                dir.pop().ok_or(LinkProblem::Outside)?;
            }
            c => dir.push(c),
        }
    }
    Ok(dir)
}

/// `s` with control characters escaped, for quoting untrusted names in error messages.
pub(crate) fn shown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str) -> Result<String, NameProblem> {
        parse_entry_name(name).map(|p| p.as_str().to_owned())
    }

    #[test]
    fn normalises_harmless_names() {
        assert_eq!(parse("bootstrap"), Ok("bootstrap".into()));
        assert_eq!(parse("lib/"), Ok("lib".into()));
        assert_eq!(parse("./a//b/./c"), Ok("a/b/c".into()));
        assert_eq!(parse("lib\\x.so"), Ok("lib/x.so".into()));
        assert_eq!(parse("..."), Ok("...".into()));
        assert_eq!(parse("a/..b"), Ok("a/..b".into()));
        assert_eq!(parse("./"), Ok(String::new()));
    }

    #[test]
    fn refuses_names_that_escape() {
        assert_eq!(parse(""), Err(NameProblem::Empty));
        assert_eq!(parse("a\0b"), Err(NameProblem::Nul));
        assert_eq!(parse("/etc/passwd"), Err(NameProblem::Absolute));
        assert_eq!(parse("\\\\server\\share"), Err(NameProblem::Absolute));
        assert_eq!(parse("C:\\x"), Err(NameProblem::DrivePrefix));
        assert_eq!(parse("c:x"), Err(NameProblem::DrivePrefix));
        assert_eq!(parse("../evil.sh"), Err(NameProblem::ParentDir));
        assert_eq!(parse("a/../b"), Err(NameProblem::ParentDir));
        assert_eq!(parse("a\\..\\..\\x"), Err(NameProblem::ParentDir));
        assert_eq!(parse(&"x".repeat(256)), Err(NameProblem::TooLong));
        assert_eq!(parse(&"a/".repeat(MAX_NAME_BYTES)), Err(NameProblem::TooLong));
    }

    #[test]
    fn resolves_targets_from_the_links_directory() {
        assert_eq!(resolve_lexically(vec!["a", "b"], "../c"), Ok(vec!["a", "c"]));
        assert_eq!(resolve_lexically(vec!["a"], ".."), Ok(vec![]));
        assert_eq!(resolve_lexically(vec!["a"], "../.."), Err(LinkProblem::Outside));
        assert_eq!(resolve_lexically(vec![], "x/../../y"), Err(LinkProblem::Outside));
        assert_eq!(
            resolve_lexically(vec!["a"], "..\\..\\etc"),
            Err(LinkProblem::Outside)
        );
        assert_eq!(resolve_lexically(vec!["a"], "/etc"), Err(LinkProblem::Outside));
    }

    #[test]
    fn normalises_targets() {
        assert_eq!(normalize_target("lib\\x"), Ok("lib/x".into()));
        assert_eq!(normalize_target(""), Err(LinkProblem::Malformed));
        assert_eq!(normalize_target("a\0"), Err(LinkProblem::Malformed));
        assert_eq!(normalize_target("/etc"), Err(LinkProblem::Outside));
        assert_eq!(normalize_target("C:/x"), Err(LinkProblem::Outside));
    }

    #[test]
    fn shown_escapes_control_characters_only() {
        assert_eq!(shown("a\0b\n"), "a\\u{0}b\\n");
        assert_eq!(shown("..\\é"), "..\\é");
    }
}
