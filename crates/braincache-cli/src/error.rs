//! The command's errors and exit codes.

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

/// Everything that makes a command fail. Each message names the file involved and describes its
/// own level only (the cause is its `source()`); `main` prints the whole chain as
/// `error: <message>: <cause>: …` and exits with [`CliError::exit_code`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The cache file is not there. The command never creates it.
    #[error("{}: no such file (braincache does not create cache files)", path.display())]
    Missing {
        /// The path given.
        path: PathBuf,
    },

    /// The path names something that is not a regular file (a folder, a device).
    #[error("{}: not a regular file", path.display())]
    NotAFile {
        /// The path given.
        path: PathBuf,
    },

    /// The cache (or a backend) reported an error: I/O, damaged data, an incompatible file.
    #[error(transparent)]
    Cache(#[from] braincache_core::Error),

    /// An I/O error outside the cache: reading the file's first bytes, writing an export.
    #[error("{what} {}", path.display())]
    Io {
        /// What was being done (`"cannot read"`, `"cannot write"`).
        what: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },

    /// Arguments that parse but make no sense together.
    #[error("{0}")]
    Usage(String),

    /// Standard output could not be written.
    #[error("cannot write to standard output")]
    Stdout(#[source] io::Error),
}

impl CliError {
    /// The exit code for this error: 2 for every failure (usage, I/O, damaged or incompatible
    /// files), as clap does for usage errors. Code 1 is kept for "the key is not there".
    pub(crate) fn exit_code(&self) -> ExitCode {
        ExitCode::from(2)
    }

    /// An I/O error on `path`.
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: io::Error) -> CliError {
        CliError::Io {
            what,
            path: path.into(),
            source,
        }
    }

    /// True when standard output was closed by its reader (`braincache ... | head`): not a
    /// failure worth a message.
    pub(crate) fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Stdout(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

/// A `Result` whose error is [`CliError`].
pub(crate) type Result<T, E = CliError> = std::result::Result<T, E>;
