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
    /// Compacting a cache file.
    Compact,
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
            Operation::Compact => "compact",
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
///
/// As the Rust API guidelines ask, an error's `Display` describes its own level only: the cause
/// (an I/O error, a codec's or a backend's error) is not repeated in it but returned by
/// [`source()`](std::error::Error::source). Print the whole chain with `anyhow`'s `{:#}`, or walk
/// `source()`:
///
/// ```
/// use braincache::{Error, Operation};
/// use std::error::Error as _;
///
/// let e = Error::io(Operation::Open, "/no/such/cache.json", std::io::Error::other("disk gone"));
/// assert_eq!(e.to_string(), "I/O error during open in /no/such/cache.json");
/// let mut chain = e.to_string();
/// let mut cause = e.source();
/// while let Some(c) = cause {
///     chain.push_str(&format!(": {c}"));
///     cause = c.source();
/// }
/// assert_eq!(chain, "I/O error during open in /no/such/cache.json: disk gone");
/// ```
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error from the file system.
    #[error("I/O error during {op}{}", location(path.as_deref(), key.as_deref(), None))]
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
    #[error("set of key {key:?}: cannot encode the value")]
    Encode {
        /// The key being written.
        key: String,
        /// The codec's error.
        #[source]
        source: CodecError,
    },

    /// The stored bytes do not decode as the requested type. The entry is left as it was.
    #[error("get of key {key:?}: stored value does not decode as `{type_name}`")]
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
    #[error("{backend} error during {op}{}", location(path.as_deref(), key.as_deref(), None))]
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

    /// The backend's store cannot answer this operation at all (memcached cannot count its
    /// entries or list their deadlines). Nothing was changed; asking again gives the same answer.
    #[error("{op}: not supported by the {backend} backend: {reason}")]
    Unsupported {
        /// The operation that was refused.
        op: Operation,
        /// Which backend.
        backend: &'static str,
        /// Why the store cannot answer it.
        reason: &'static str,
    },

    /// The operation needs the file to itself, and another handle (in this process or
    /// another) has it open. Nothing was changed.
    #[error("{op} of {}: the file is in use: {detail}", path.display())]
    InUse {
        /// The operation that was refused.
        op: Operation,
        /// The file.
        path: PathBuf,
        /// Who holds it, as far as known, and what to do.
        detail: String,
    },

    /// An async call could not complete: no tokio runtime, the runtime shut down, or the
    /// loader of `get_or_insert_with` panicked in the task computing the value this call
    /// waited for (a later call computes it again).
    #[error("{op}{}: {detail}", location(None, key.as_deref(), None))]
    Task {
        /// The operation that failed.
        op: Operation,
        /// The key involved, where one is.
        key: Option<String>,
        /// What happened.
        detail: String,
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
            Error::Io { key, .. }
            | Error::Corrupt { key, .. }
            | Error::Backend { key, .. }
            | Error::Task { key, .. }
                if key.is_none() =>
            {
                *key = Some(k.to_owned());
            }
            _ => {}
        }
        self
    }

    /// An operation the backend's store cannot answer ([`Error::Unsupported`]).
    pub fn unsupported(op: Operation, backend: &'static str, reason: &'static str) -> Error {
        Error::Unsupported {
            op,
            backend,
            reason,
        }
    }

    /// True when the backend cannot answer this operation at all ([`Error::Unsupported`]).
    #[must_use]
    pub fn is_unsupported(&self) -> bool {
        matches!(self, Error::Unsupported { .. })
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

    /// True when a value could not be encoded ([`Error::Encode`]).
    #[must_use]
    pub fn is_encode(&self) -> bool {
        matches!(self, Error::Encode { .. })
    }

    /// True when the backend refused a key ([`Error::InvalidKey`]).
    #[must_use]
    pub fn is_invalid_key(&self) -> bool {
        matches!(self, Error::InvalidKey { .. })
    }

    /// True when the data was written by an incompatible version or program
    /// ([`Error::Incompatible`]); nothing was changed.
    #[must_use]
    pub fn is_incompatible(&self) -> bool {
        matches!(self, Error::Incompatible { .. })
    }

    /// True when the backend was closed and refuses further calls ([`Error::Closed`]).
    #[must_use]
    pub fn is_closed(&self) -> bool {
        matches!(self, Error::Closed { .. })
    }

    /// True for an error reported by the backend's engine or server ([`Error::Backend`]).
    #[must_use]
    pub fn is_backend(&self) -> bool {
        matches!(self, Error::Backend { .. })
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
            | Error::Closed { op, .. }
            | Error::Unsupported { op, .. }
            | Error::InUse { op, .. }
            | Error::Task { op, .. } => Some(*op),
            Error::Encode { .. } => Some(Operation::Set),
            Error::Decode { .. } => Some(Operation::Get),
            _ => None,
        }
    }

    /// The key involved, where the error records one.
    #[must_use]
    pub fn key(&self) -> Option<&str> {
        match self {
            Error::Io { key, .. }
            | Error::Corrupt { key, .. }
            | Error::Backend { key, .. }
            | Error::Task { key, .. } => key.as_deref(),
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
            Error::InUse { path, .. } => Some(path),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each kind has its predicate, true for that kind only.
    #[test]
    fn every_kind_has_its_is_helper() {
        let errors = [
            Error::io(Operation::Open, "/x", io::Error::other("e")),
            Error::corrupt_entry("k", "d"),
            Error::Incompatible {
                path: None,
                detail: "v9".into(),
            },
            Error::Encode {
                key: "k".into(),
                source: CodecError::new("json", "e"),
            },
            Error::Decode {
                key: "k".into(),
                type_name: "u32",
                source: CodecError::new("json", "e"),
            },
            Error::InvalidKey {
                op: Operation::Set,
                key: "k".into(),
                reason: "r".into(),
            },
            Error::backend(Operation::Get, "redb", None, "e"),
            Error::Closed {
                op: Operation::Get,
                backend: "redb",
            },
            Error::unsupported(Operation::Len, "memcached", "r"),
        ];
        let preds: [fn(&Error) -> bool; 9] = [
            Error::is_io,
            Error::is_corrupt,
            Error::is_incompatible,
            Error::is_encode,
            Error::is_decode,
            Error::is_invalid_key,
            Error::is_backend,
            Error::is_closed,
            Error::is_unsupported,
        ];
        for (i, e) in errors.iter().enumerate() {
            for (j, p) in preds.iter().enumerate() {
                assert_eq!(p(e), i == j, "{e:?}, predicate {j}");
            }
        }
    }

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
        assert_eq!(e.to_string(), "I/O error during set in /x/y (key \"k\")");
        assert_eq!(e.key(), Some("k"));
        assert_eq!(e.operation(), Some(Operation::Set));
    }

    /// `{e}: {source}: {source's source}…`, as anyhow's `{:#}` prints an error.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut out = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            out.push_str(": ");
            out.push_str(&c.to_string());
            cause = c.source();
        }
        out
    }

    /// One error of every variant, each with a distinctive cause where it carries one.
    fn every_variant() -> Vec<Error> {
        vec![
            Error::io(
                Operation::Open,
                "/cache/app.json",
                io::Error::new(io::ErrorKind::NotFound, "io-cause-1"),
            ),
            Error::corrupt_file(
                "/cache/app.json",
                Some("line 1, column 2".into()),
                "detail-2",
            ),
            Error::corrupt_entry("k", "detail-3"),
            Error::Incompatible {
                path: Some("/cache/app.redb".into()),
                detail: "detail-4".into(),
            },
            Error::Encode {
                key: "k".into(),
                source: CodecError::new("postcard", "codec-cause-5"),
            },
            Error::Decode {
                key: "k".into(),
                type_name: "u32",
                source: CodecError::new("json", "codec-cause-6"),
            },
            Error::InvalidKey {
                op: Operation::Set,
                key: "k".into(),
                reason: "reason-7".into(),
            },
            Error::backend(Operation::Get, "redb", Some("k"), "backend-cause-8")
                .with_path(Path::new("/cache/app.redb")),
            // A cause that has its own cause: each level appears once.
            Error::backend(
                Operation::Set,
                "redis",
                None,
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    Wrapper(io::Error::other("inner-9")),
                ),
            ),
            Error::Closed {
                op: Operation::Flush,
                backend: "redb",
            },
        ]
    }

    /// An error with a source of its own, written the way the guidelines ask.
    #[derive(Debug)]
    struct Wrapper(io::Error);

    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("outer-9")
        }
    }

    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    /// Issue 13, item 4: `Display` describes its own level; the cause is reached through
    /// `source()` only, so a printed chain shows each cause once.
    #[test]
    fn r13_display_does_not_repeat_the_source() {
        use std::error::Error as _;
        for e in every_variant() {
            let own = e.to_string();
            let mut cause = e.source();
            while let Some(c) = cause {
                let text = c.to_string();
                assert!(
                    !own.contains(&text),
                    "{own:?} repeats its cause {text:?} ({e:?})"
                );
                cause = c.source();
            }
            let chain = chain(&e);
            let mut level: Option<&dyn std::error::Error> = Some(&e);
            while let Some(l) = level {
                let text = l.to_string();
                assert_eq!(
                    chain.matches(&text).count(),
                    1,
                    "{text:?} appears more than once in {chain:?}"
                );
                level = l.source();
            }
        }
    }

    #[test]
    fn r13_chains_read_as_sentences() {
        let texts: Vec<String> = every_variant().iter().map(|e| chain(e)).collect();
        assert_eq!(
            texts,
            [
                "I/O error during open in /cache/app.json: io-cause-1",
                "corrupt cache data in /cache/app.json at line 1, column 2: detail-2",
                "corrupt cache data (key \"k\"): detail-3",
                "incompatible cache data in /cache/app.redb: detail-4",
                "set of key \"k\": cannot encode the value: postcard: codec-cause-5",
                "get of key \"k\": stored value does not decode as `u32`: json: codec-cause-6",
                "set of key \"k\": invalid key: reason-7",
                "redb error during get in /cache/app.redb (key \"k\"): backend-cause-8",
                "redis error during set: outer-9: inner-9",
                "flush: the redb backend is closed",
            ]
        );
    }

    #[test]
    fn unsupported_and_timeout_are_recognised() {
        let e = Error::unsupported(Operation::Len, "memcached", "no way to count entries");
        assert!(e.is_unsupported());
        assert_eq!(e.operation(), Some(Operation::Len));
        assert!(!e.is_timeout());
        let e = Error::backend(
            Operation::Set,
            "memcached",
            Some("k"),
            io::Error::new(io::ErrorKind::TimedOut, "read timed out"),
        );
        assert!(e.is_timeout());
        assert!(!e.is_unsupported());
        let e = Error::backend(Operation::Get, "redis", None, io::Error::other("refused"));
        assert!(!e.is_timeout());
    }
}
