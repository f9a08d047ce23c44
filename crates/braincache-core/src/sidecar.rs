//! Paths of the files a backend keeps beside its main file (a lock, a temp file, a stamp), and
//! the errors of the steps that touch them.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

/// The path of a file beside `path`, named by appending `suffix` to its file name:
/// `sidecar("/c/app.json", ".lock")` is `/c/app.json.lock`. Appending (rather than
/// [`Path::with_extension`]) keeps the whole name, so `app.json` and `app.redb` never share a
/// sidecar, and non-UTF-8 names stay as they are.
///
/// ```
/// use braincache_core::sidecar;
/// use std::path::Path;
///
/// assert_eq!(sidecar(Path::new("/c/app.json"), ".lock"), Path::new("/c/app.json.lock"));
/// assert_eq!(sidecar(Path::new("app.redb"), ".seq"), Path::new("app.redb.seq"));
/// ```
#[must_use]
pub fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// `e` as the cause of a step on `other` (the folder, a lock file) of opening a cache file:
/// `cannot open its lock file /x/c.json.lock`, whose `source()` is `e`. The kind stays `e`'s,
/// so [`Error::is_storage_full`](crate::Error::is_storage_full) and the like still see it once
/// it is wrapped in [`Error::io`](crate::Error::io) naming the cache file.
///
/// ```
/// use braincache_core::{Error, Operation, in_step};
/// use std::io;
/// use std::path::Path;
///
/// let e = io::Error::new(io::ErrorKind::PermissionDenied, "denied");
/// let e = in_step("cannot create its folder", Path::new("/c"), e);
/// assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
/// assert_eq!(e.to_string(), "cannot create its folder /c");
/// let e = Error::io(Operation::Open, "/c/app.json", e);
/// assert!(e.is_io());
/// ```
#[must_use]
pub fn in_step(what: &'static str, other: &Path, e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        StepError {
            what,
            path: other.to_path_buf(),
            source: e,
        },
    )
}

#[derive(Debug)]
struct StepError {
    what: &'static str,
    path: PathBuf,
    source: io::Error,
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.what, self.path.display())
    }
}

impl std::error::Error for StepError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_to_the_whole_name() {
        assert_eq!(sidecar(Path::new("a.b.c"), ".tmp"), Path::new("a.b.c.tmp"));
        assert_eq!(
            sidecar(Path::new("dir/x"), ".lock"),
            Path::new("dir/x.lock")
        );
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let odd = Path::new(std::ffi::OsStr::from_bytes(b"caf\xe9"));
            assert_eq!(sidecar(odd, ".seq").as_os_str().as_bytes(), b"caf\xe9.seq");
        }
    }
}
