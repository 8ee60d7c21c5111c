//! Function code bundles: turns a directory into a zip and a zip back into a directory, safely.
//!
//! Native ("process") functions are uploaded the way AWS Lambda takes them: a `.zip` whose root
//! holds an executable `bootstrap` (or a python/node handler file). The CLI calls [`pack_dir`] on
//! the user's directory; the server checks [`is_zip`], then [`unpack`]s the upload into the
//! function's code directory, answering 400 when [`UnpackError::is_invalid_code`] and 500 otherwise.
//!
//! Both directions share one model of an archive's tree (`tree`), so whatever [`pack_dir`] makes,
//! [`unpack`] accepts, and both refuse the same symlinks that would lead out of the function's
//! directory.

mod entry_path;
mod error;
mod limits;
mod pack;
mod tree;
mod unpack;

pub use entry_path::NameProblem;
pub use error::{EntryError, PackError, UnpackError};
pub use limits::{UnpackLimits, Unpacked};
pub use pack::{SKIPPED_DIRS, pack_dir};
pub use unpack::unpack;

/// Whether `bytes` look like a zip archive: they start with a local file header, or are the
/// end-of-central-directory record of an empty archive.
///
/// This is a cheap sniff to tell a zip from a wasm module or other upload; [`unpack`] still checks
/// the whole archive.
pub fn is_zip(bytes: &[u8]) -> bool {
    const LOCAL_FILE_HEADER: &[u8] = b"PK\x03\x04";
    const END_OF_CENTRAL_DIRECTORY: &[u8] = b"PK\x05\x06";
    const EOCD_LEN: usize = 22;
    bytes.starts_with(LOCAL_FILE_HEADER)
        || (bytes.starts_with(END_OF_CENTRAL_DIRECTORY) && bytes.len() >= EOCD_LEN)
}

#[cfg(test)]
mod tests {
    use super::is_zip;

    #[test]
    fn sniffs_zip_magic() {
        assert!(is_zip(b"PK\x03\x04rest"));
        let mut empty = b"PK\x05\x06".to_vec();
        empty.resize(22, 0);
        assert!(is_zip(&empty));
        assert!(!is_zip(&empty[..21]));
        assert!(!is_zip(b"\0asm\x01\0\0\0"));
        assert!(!is_zip(b""));
        assert!(!is_zip(b"PK"));
    }
}
