//! The one error type of braincache.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A `Result` whose error is braincache's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The cache operation that failed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Opening or connecting to a backend.
    Open,
    /// Reading an entry.
    Get,
    /// Writing an entry.
    Set,
    /// Removing an entry.
    Delete,
    /// Removing every entry.
    Clear,
    /// Counting entries.
    Len,
    /// Removing expired entries.
    Purge,
    /// Asking for the next deadline.
    NextExpiry,
    /// Writing pending changes out.
    Flush,
    /// Closing a backend.
    Close,
    /// Taking or releasing a lease (`Backend::try_lease`, `Backend::release_lease`).
    Lease,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Open => "open",
            Operation::Get => "get",
            Operation::Set => "set",
            Operation::Delete => "delete",
            Operation::Clear => "clear",
            Operation::Len => "len",
            Operation::Purge => "purge_expired",
            Operation::NextExpiry => "next_expiry",
            Operation::Flush => "flush",
            Operation::Close => "close",
            Operation::Lease => "lease",
        })
    }
}

/// A codec's failure to encode or decode a value.
#[derive(Debug, thiserror::Error)]
#[error("{codec}: {message}")]
pub struct CodecError {
    codec: &'static str,
    message: String,
    stored_codec: Option<crate::CodecId>,
}

impl CodecError {
    /// A codec error: the codec's name and what it said.
    pub fn new(codec: &'static str, message: impl fmt::Display) -> CodecError {
        CodecError {
            codec,
            message: message.to_string(),
            stored_codec: None,
        }
    }

    /// The error of reading, with codec `codec` (id `expected`), a value that was stored with
    /// the codec `stored`: nothing was decoded.
    pub fn mismatch(codec: &'static str, expected: crate::CodecId, stored: crate::CodecId) -> Self {
        CodecError {
            codec,
            message: format!("the value was stored with {stored}; this cache reads {expected}"),
            stored_codec: Some(stored),
        }
    }

    /// For a [`CodecError::mismatch`], the codec the value was stored with.
    #[must_use]
    pub fn stored_codec(&self) -> Option<crate::CodecId> {
        self.stored_codec
    }

    /// The name of the codec that failed (`"postcard"`, `"json"`, ...).
    #[must_use]
    pub fn codec(&self) -> &'static str {
        self.codec
    }
}

/// Everything that can go wrong in braincache.
///
/// Each variant says which operation failed and on which key or path, and carries the cause.
/// Data damaged on disk or on the wire is [`Error::Corrupt`], never a panic and never read as an
/// empty cache.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error from the file system.
    #[error("{op}{}: {source}", location(path.as_deref(), key.as_deref(), None))]
    Io {
        /// The operation that failed.
        op: Operation,
        /// The file involved, where one is.
        path: Option<PathBuf>,
        /// The key involved, where one is.
        key: Option<String>,
        /// The cause.
        #[source]
        source: io::Error,
    },

    /// Stored data is not in the expected format. The data is left as it was.
    #[error(
        "corrupt cache data{}: {detail}",
        location(path.as_deref(), key.as_deref(), position.as_deref())
    )]
    Corrupt {
        /// The file involved, where one is.
        path: Option<PathBuf>,
        /// The key involved, where one is.
        key: Option<String>,
        /// Where in the data the problem is (for example `line 3, column 7`), where known.
        position: Option<String>,
        /// What is wrong.
        detail: String,
    },

    /// The data was written by an incompatible version or program (another format version, other
    /// tables). Nothing was changed.
    #[error("incompatible cache data{}: {detail}", location(path.as_deref(), None, None))]
    Incompatible {
        /// The file involved, where one is.
        path: Option<PathBuf>,
        /// What does not match.
        detail: String,
    },

    /// A value could not be encoded by the codec.
    #[error("set of key {key:?}: cannot encode the value: {source}")]
    Encode {
        /// The key being written.
        key: String,
        /// The codec's error.
        #[source]
        source: CodecError,
    },

    /// The stored bytes do not decode as the requested type. The entry is left as it was.
    #[error("get of key {key:?}: stored value does not decode as `{type_name}`: {source}")]
    Decode {
        /// The key being read.
        key: String,
        /// The requested Rust type.
        type_name: &'static str,
        /// The codec's error.
        #[source]
        source: CodecError,
    },

    /// A key the backend cannot store (for example too long for its format).
    #[error("{op} of key {key:?}: invalid key: {reason}")]
    InvalidKey {
        /// The operation that refused it.
        op: Operation,
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },

    /// The backend (a database engine, a server) reported an error.
    #[error("{op}{}: {backend} error: {source}", location(path.as_deref(), key.as_deref(), None))]
    Backend {
        /// The operation that failed.
        op: Operation,
        /// Which backend (`"redb"`, `"redis"`, ...).
        backend: &'static str,
        /// The file involved, where one is.
        path: Option<PathBuf>,
        /// The key involved, where one is.
        key: Option<String>,
        /// The backend's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The backend was closed (its worker thread stopped) and cannot serve requests.
    #[error("{op}: the {backend} backend is closed")]
    Closed {
        /// The operation that was refused.
        op: Operation,
        /// Which backend.
        backend: &'static str,
    },
}

fn location(path: Option<&Path>, key: Option<&str>, position: Option<&str>) -> String {
    let mut s = String::new();
    if let Some(p) = path {
        s.push_str(&format!(" in {}", p.display()));
    }
    if let Some(pos) = position {
        s.push_str(&format!(" at {pos}"));
    }
    if let Some(k) = key {
        s.push_str(&format!(" (key {k:?})"));
    }
    s
}

impl Error {
    /// An I/O error during `op` on `path`.
    pub fn io(op: Operation, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: Some(path.into()),
            key: None,
            source,
        }
    }

    /// Corruption found in the file at `path`, at `position` when known.
    pub fn corrupt_file(
        path: impl Into<PathBuf>,
        position: Option<String>,
        detail: impl Into<String>,
    ) -> Error {
        Error::Corrupt {
            path: Some(path.into()),
            key: None,
            position,
            detail: detail.into(),
        }
    }

    /// Corruption found in the stored entry for `key`.
    pub fn corrupt_entry(key: &str, detail: impl Into<String>) -> Error {
        Error::Corrupt {
            path: None,
            key: Some(key.to_owned()),
            position: None,
            detail: detail.into(),
        }
    }

    /// An error reported by a backend's engine or server.
    pub fn backend(
        op: Operation,
        backend: &'static str,
        key: Option<&str>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Error {
        Error::Backend {
            op,
            backend,
            path: None,
            key: key.map(str::to_owned),
            source: source.into(),
        }
    }

    /// Attaches `path` to an error that has a place for one and none yet.
    #[must_use]
    pub fn with_path(mut self, p: &Path) -> Error {
        match &mut self {
            Error::Io { path, .. }
            | Error::Corrupt { path, .. }
            | Error::Incompatible { path, .. }
            | Error::Backend { path, .. }
                if path.is_none() =>
            {
                *path = Some(p.to_path_buf());
            }
            _ => {}
        }
        self
    }

    /// Attaches `key` to an error that has a place for one and none yet.
    #[must_use]
    pub fn with_key(mut self, k: &str) -> Error {
        match &mut self {
            Error::Io { key, .. } | Error::Corrupt { key, .. } | Error::Backend { key, .. }
                if key.is_none() =>
            {
                *key = Some(k.to_owned());
            }
            _ => {}
        }
        self
    }

    /// True for damaged data ([`Error::Corrupt`]).
    #[must_use]
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Error::Corrupt { .. })
    }

    /// True when a stored value did not decode as the requested type ([`Error::Decode`]).
    #[must_use]
    pub fn is_decode(&self) -> bool {
        matches!(self, Error::Decode { .. })
    }

    /// True when a stored value was written with another codec than the one reading it (an
    /// [`Error::Decode`] whose source is a [`CodecError::mismatch`]).
    #[must_use]
    pub fn is_codec_mismatch(&self) -> bool {
        matches!(self, Error::Decode { source, .. } if source.stored_codec.is_some())
    }

    /// True for file-system errors ([`Error::Io`]).
    #[must_use]
    pub fn is_io(&self) -> bool {
        matches!(self, Error::Io { .. })
    }

    /// True when the operation gave up waiting: an I/O error of kind
    /// [`TimedOut`](io::ErrorKind::TimedOut) in [`Error::Io`], or in the cause of
    /// [`Error::Backend`] (a server that did not answer in time).
    ///
    /// A write that timed out has an **unknown outcome**: the request may have reached the
    /// server, which may have applied it, or may still apply it later. Read the key again, or
    /// write it again (`set` and `delete` are idempotent), when the outcome matters.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        self.has_io_kind(io::ErrorKind::TimedOut)
    }

    /// True when the disk (or the file system's quota) is full: an I/O error of kind
    /// [`StorageFull`](io::ErrorKind::StorageFull) (`ENOSPC`, or `EDQUOT` on Linux) in
    /// [`Error::Io`], or in the cause of [`Error::Backend`]. The write was not applied; the same
    /// handle works again once there is space.
    #[must_use]
    pub fn is_storage_full(&self) -> bool {
        self.has_io_kind(io::ErrorKind::StorageFull)
            || self.has_io_kind(io::ErrorKind::QuotaExceeded)
    }

    /// True when this error, or a cause in its `source()` chain, is an [`io::Error`] of `kind`.
    fn has_io_kind(&self, kind: io::ErrorKind) -> bool {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = match self {
            Error::Io { source, .. } => Some(source),
            Error::Backend { source, .. } => Some(source.as_ref()),
            _ => None,
        };
        // Bounded: a cycle in a hand-written `source()` must not hang the caller.
        for _ in 0..16 {
            let Some(e) = cause else { return false };
            if e.downcast_ref::<io::Error>()
                .is_some_and(|io| io.kind() == kind)
            {
                return true;
            }
            cause = e.source();
        }
        false
    }

    /// The underlying I/O error, if this is one.
    #[must_use]
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The operation that failed, where the error records one.
    #[must_use]
    pub fn operation(&self) -> Option<Operation> {
        match self {
            Error::Io { op, .. }
            | Error::InvalidKey { op, .. }
            | Error::Backend { op, .. }
            | Error::Closed { op, .. } => Some(*op),
            Error::Encode { .. } => Some(Operation::Set),
            Error::Decode { .. } => Some(Operation::Get),
            _ => None,
        }
    }

    /// The key involved, where the error records one.
    #[must_use]
    pub fn key(&self) -> Option<&str> {
        match self {
            Error::Io { key, .. } | Error::Corrupt { key, .. } | Error::Backend { key, .. } => {
                key.as_deref()
            }
            Error::Encode { key, .. }
            | Error::Decode { key, .. }
            | Error::InvalidKey { key, .. } => Some(key),
            _ => None,
        }
    }

    /// The file involved, where the error records one.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::Io { path, .. }
            | Error::Corrupt { path, .. }
            | Error::Incompatible { path, .. }
            | Error::Backend { path, .. } => path.as_deref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_and_full_disks_are_told_through_the_cause_chain() {
        let timed_out = io::Error::new(io::ErrorKind::TimedOut, "no reply");
        assert!(Error::io(Operation::Get, "/x", timed_out).is_timeout());
        // A backend's cause that wraps an I/O error, one level down.
        #[derive(Debug)]
        struct Wrapper(io::Error);
        impl fmt::Display for Wrapper {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("wrapped")
            }
        }
        impl std::error::Error for Wrapper {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Error::backend(
            Operation::Set,
            "redis",
            Some("k"),
            Wrapper(io::Error::new(io::ErrorKind::TimedOut, "late")),
        );
        assert!(e.is_timeout() && !e.is_storage_full());
        let full = Error::io(Operation::Set, "/x", io::ErrorKind::StorageFull.into());
        assert!(full.is_storage_full() && !full.is_timeout());
        let e = Error::backend(
            Operation::Set,
            "redb",
            None,
            io::Error::from(io::ErrorKind::StorageFull),
        );
        assert!(e.is_storage_full());
        let other = Error::backend(Operation::Get, "redis", None, "connection refused");
        assert!(!other.is_timeout() && !other.is_storage_full());
        assert!(!Error::corrupt_entry("k", "bad").is_timeout());
    }

    #[test]
    fn messages_name_operation_path_key_and_position() {
        let e = Error::corrupt_file(
            "/tmp/c.json",
            Some("line 3, column 7".into()),
            "expected `:`",
        );
        assert_eq!(
            e.to_string(),
            "corrupt cache data in /tmp/c.json at line 3, column 7: expected `:`"
        );
        assert!(e.is_corrupt());
        assert_eq!(e.path(), Some(Path::new("/tmp/c.json")));

        let e = Error::io(Operation::Set, "/x/y", io::Error::other("disk full")).with_key("k");
        assert_eq!(e.to_string(), "set in /x/y (key \"k\"): disk full");
        assert_eq!(e.key(), Some("k"));
        assert_eq!(e.operation(), Some(Operation::Set));
    }
}
