//! The errors of packing and unpacking, worded for the user who uploaded the code. Names and
//! targets are quoted with control characters escaped.

use std::io;
use std::path::PathBuf;

use crate::entry_path::{LinkProblem, NameProblem, shown};

/// A problem with one entry of the tree (a zip entry when unpacking, a file when packing). The
/// message starts with the quoted entry, so [`UnpackError`] can prefix it with "zip entry".
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("`{entry}` {problem}")]
    BadName { entry: String, problem: NameProblem },
    #[error("`{entry}` appears more than once")]
    Duplicate { entry: String },
    #[error("`{entry}` would be written through the symlink `{link}`")]
    ThroughSymlink { entry: String, link: String },
    #[error("`{entry}` is inside `{file}`, which is a file")]
    UnderFile { entry: String, file: String },
    #[error("`{entry}` is a symlink to `{target}`, outside the function's directory")]
    SymlinkOutside { entry: String, target: String },
    #[error("`{entry}` is a symlink to `{target}`, which loops or goes through too many symlinks")]
    SymlinkTooDeep { entry: String, target: String },
    #[error("`{entry}` is a symlink with an empty, malformed or too long target")]
    BadSymlinkTarget { entry: String },
    #[error("`{entry}` is neither a file, a directory nor a symlink")]
    UnsupportedType { entry: String },
}

impl EntryError {
    /// The error for the symlink `entry` whose `target` has `problem`.
    pub(crate) fn link(problem: LinkProblem, entry: &str, target: &str) -> Self {
        let (entry, target) = (shown(entry), shown(target));
        match problem {
            LinkProblem::Outside => Self::SymlinkOutside { entry, target },
            LinkProblem::TooDeep => Self::SymlinkTooDeep { entry, target },
            LinkProblem::Malformed => Self::BadSymlinkTarget { entry },
        }
    }
}

/// Why [`crate::unpack`] refused an archive or failed to write it.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("the code is not a valid zip archive: {0}")]
    InvalidArchive(String),
    #[error("the code uses a zip feature that is not supported: {0}")]
    Unsupported(String),
    #[error("zip entry {0}")]
    Entry(#[from] EntryError),
    #[error("the code has more than {limit} files and directories (the limit)")]
    TooManyEntries { limit: usize },
    #[error("the code unpacks to more than {limit} bytes (the limit)")]
    TooLarge { limit: u64 },
    /// A local failure (full disk, missing parent directory, permissions), not the archive's.
    #[error("failed to unpack the code into `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl UnpackError {
    /// Whether the archive's content caused the error (answer 400), rather than a local I/O
    /// failure such as a full disk (answer 500).
    pub fn is_invalid_code(&self) -> bool {
        !matches!(self, Self::Io { .. })
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }

    /// Rewords the zip crate's error. The archive is read from memory, so every error it
    /// reports (its I/O errors included: truncation, bad checksums) comes from the archive.
    pub(crate) fn from_zip(err: zip::result::ZipError, entry: Option<&str>) -> Self {
        use zip::result::ZipError;
        let context = entry
            .map(|e| format!("entry `{}`: ", shown(e)))
            .unwrap_or_default();
        match err {
            ZipError::UnsupportedArchive(msg) => {
                Self::Unsupported(format!("{context}{}", lowercase_first(msg)))
            }
            ZipError::CompressionMethodNotSupported(id) => {
                Self::Unsupported(format!("{context}compression method {id} (use deflate or store)"))
            }
            ZipError::InvalidArchive(msg) => {
                Self::InvalidArchive(format!("{context}{}", lowercase_first(&msg)))
            }
            ZipError::Io(e) => Self::InvalidArchive(format!("{context}{}", lowercase_first(&e.to_string()))),
            other => Self::InvalidArchive(format!("{context}{other}")),
        }
    }
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Why [`crate::pack_dir`] could not zip a directory.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("`{}` is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("failed to read `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`{}` is not valid UTF-8, which zip entry names must be", .0.display())]
    NonUtf8Name(PathBuf),
    #[error("{0}")]
    Entry(#[from] EntryError),
    #[error("`{}` has more than {limit} files and directories (the limit)", dir.display())]
    TooManyEntries { dir: PathBuf, limit: usize },
    #[error("`{}` holds more than {limit} bytes (the limit)", dir.display())]
    TooLarge { dir: PathBuf, limit: u64 },
    #[error("failed to write the zip archive: {0}")]
    Zip(#[from] zip::result::ZipError),
}

impl PackError {
    pub(crate) fn read(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Read { path, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_sentences_about_the_entry() {
        let err = UnpackError::from(EntryError::BadName {
            entry: "../evil.sh".into(),
            problem: NameProblem::ParentDir,
        });
        assert_eq!(
            err.to_string(),
            "zip entry `../evil.sh` escapes the function's directory"
        );
        let err = UnpackError::from(EntryError::SymlinkOutside {
            entry: "lib".into(),
            target: "/etc".into(),
        });
        assert_eq!(
            err.to_string(),
            "zip entry `lib` is a symlink to `/etc`, outside the function's directory"
        );
        let err = UnpackError::TooLarge { limit: 262_144_000 };
        assert_eq!(
            err.to_string(),
            "the code unpacks to more than 262144000 bytes (the limit)"
        );
    }

    #[test]
    fn only_local_io_is_not_the_codes_fault() {
        assert!(UnpackError::InvalidArchive("x".into()).is_invalid_code());
        assert!(UnpackError::TooManyEntries { limit: 1 }.is_invalid_code());
        assert!(
            !UnpackError::Io {
                path: "/x".into(),
                source: io::Error::other("disk full")
            }
            .is_invalid_code()
        );
    }
}
