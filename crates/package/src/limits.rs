//! The limits on what an archive may hold, and the byte budget that enforces them while copying
//! (counting the bytes really read, never the sizes an archive declares).

use std::io::{self, Read, Write};

/// Limits on what an archive may unpack to (and what a directory may pack from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackLimits {
    /// The most bytes of file contents (and symlink targets) the archive may unpack to.
    pub max_total_bytes: u64,
    /// The most files, directories and symlinks the archive may create, counting the
    /// directories that are only implied by the entries' paths.
    pub max_entries: usize,
}

impl UnpackLimits {
    /// AWS Lambda's limit on a function's unzipped code: 250 MiB.
    pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 250 * 1024 * 1024;
    /// The default limit on files, directories and symlinks.
    pub const DEFAULT_MAX_ENTRIES: usize = 20_000;
}

impl Default for UnpackLimits {
    fn default() -> Self {
        Self {
            max_total_bytes: Self::DEFAULT_MAX_TOTAL_BYTES,
            max_entries: Self::DEFAULT_MAX_ENTRIES,
        }
    }
}

/// What was unpacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unpacked {
    /// Regular files written (directories and symlinks are not counted).
    pub files: usize,
    /// Bytes written: file contents plus symlink targets (what `max_total_bytes` limits).
    pub total_bytes: u64,
}

/// Why a [`Budget::copy`] stopped.
#[derive(Debug)]
pub(crate) enum CopyError {
    Read(io::Error),
    Write(io::Error),
    OverBudget,
}

/// The bytes left to write before `max_total_bytes` is reached.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: u64,
    used: u64,
}

impl Budget {
    pub(crate) fn new(limit: u64) -> Self {
        Self { limit, used: 0 }
    }

    pub(crate) fn used(&self) -> u64 {
        self.used
    }

    /// Counts `n` more bytes; fails once the total passes the limit.
    pub(crate) fn charge(&mut self, n: u64) -> Result<(), CopyError> {
        self.used = self.used.saturating_add(n);
        if self.used > self.limit {
            Err(CopyError::OverBudget)
        } else {
            Ok(())
        }
    }

    /// Copies `from` into `to`, charging every byte read. Stops as soon as the budget is
    /// exceeded, so a stream that inflates without end costs at most one buffer past the limit.
    pub(crate) fn copy(&mut self, from: &mut impl Read, to: &mut impl Write) -> Result<u64, CopyError> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut copied = 0u64;
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => return Ok(copied),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(CopyError::Read(e)),
            };
            self.charge(n as u64)?;
            to.write_all(&buf[..n]).map_err(CopyError::Write)?;
            copied += n as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_limits_are_lambdas() {
        let limits = UnpackLimits::default();
        assert_eq!(limits.max_total_bytes, 262_144_000);
        assert_eq!(limits.max_entries, 20_000);
    }

    #[test]
    fn copy_counts_real_bytes_and_stops_past_the_limit() {
        let mut budget = Budget::new(1000);
        let mut out = Vec::new();
        let copied = budget.copy(&mut io::repeat(7).take(600), &mut out).unwrap();
        assert_eq!((copied, out.len(), budget.used()), (600, 600, 600));

        // An endless stream (what a zip bomb looks like to the copier) is cut off.
        let mut out = Vec::new();
        let err = budget.copy(&mut io::repeat(0), &mut out).unwrap_err();
        assert!(matches!(err, CopyError::OverBudget));
        assert!(out.is_empty(), "the chunk that crossed the limit was not written");
    }

    #[test]
    fn copy_tells_read_errors_from_write_errors() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("corrupt"))
            }
        }
        let mut budget = Budget::new(10);
        assert!(matches!(
            budget.copy(&mut Failing, &mut Vec::new()),
            Err(CopyError::Read(_))
        ));
        let mut full = [0u8; 2];
        let err = budget.copy(&mut &b"abc"[..], &mut &mut full[..]).unwrap_err();
        assert!(matches!(err, CopyError::Write(_)));
    }
}
