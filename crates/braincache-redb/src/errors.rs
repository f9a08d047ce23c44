//! redb's errors, as braincache errors.

use braincache_core::{Error, Operation};
use std::io;
use std::path::Path;

pub(crate) use crate::BACKEND_NAME as BACKEND;

/// Maps a redb error met during `op` (on `key`, where there is one) on the file at `path`.
///
/// - damage redb detected → [`Error::Corrupt`];
/// - a file that is not a redb database (redb's "magic number mismatch", an `InvalidData` I/O
///   error at open) → [`Error::Corrupt`] naming the path;
/// - a file in an older redb format → [`Error::Incompatible`];
/// - other I/O errors → [`Error::Io`];
/// - anything else → [`Error::Backend`] with the path attached.
pub(crate) fn map(
    op: Operation,
    path: &Path,
    key: Option<&str>,
    err: impl Into<redb::Error>,
) -> Error {
    let err: redb::Error = err.into();
    let mapped = match err {
        redb::Error::Corrupted(detail) => Error::corrupt_file(path, None, detail),
        redb::Error::UpgradeRequired(v) => Error::Incompatible {
            path: Some(path.to_path_buf()),
            detail: format!(
                "the file is in redb file format {v}, which redb 4 does not open; \
                 upgrade it with redb's own tools"
            ),
        },
        redb::Error::Io(e) if op == Operation::Open && e.kind() == io::ErrorKind::InvalidData => {
            Error::corrupt_file(path, None, not_a_database(&e))
        }
        redb::Error::Io(e) => Error::io(op, path, e),
        other => Error::backend(op, BACKEND, key, other).with_path(path),
    };
    match key {
        Some(k) => mapped.with_key(k),
        None => mapped,
    }
}

/// The detail of a file that is not a redb database, saying so once: redb's own message
/// ("Not a redb database: magic number mismatch") already does.
fn not_a_database(e: &io::Error) -> String {
    let said = e.to_string();
    if said.to_ascii_lowercase().starts_with("not a redb database") {
        let mut detail = said;
        detail[..1].make_ascii_lowercase();
        detail
    } else {
        format!("not a redb database: {said}")
    }
}

/// What a caught panic said.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// The error for a panic inside redb while writing, caught so that it reaches the caller.
pub(crate) fn write_panicked(
    op: Operation,
    path: &Path,
    key: Option<&str>,
    payload: &(dyn std::any::Any + Send),
) -> Error {
    let what = panic_message(payload);
    Error::backend(op, BACKEND, key, format!("redb panicked: {what}")).with_path(path)
}

/// The error for a panic inside redb while opening or reading: redb panics on pages damaged
/// outside redb, so this is [`Error::Corrupt`].
pub(crate) fn read_panicked(
    path: &Path,
    key: Option<&str>,
    payload: &(dyn std::any::Any + Send),
) -> Error {
    let what = panic_message(payload);
    let e = Error::corrupt_file(
        path,
        None,
        format!("redb panicked reading the file, which is probably damaged: {what}"),
    );
    match key {
        Some(k) => e.with_key(k),
        None => e,
    }
}

/// The error for a request the writer thread could not take or answer.
pub(crate) fn closed(op: Operation) -> Error {
    Error::Closed {
        op,
        backend: BACKEND,
    }
}
