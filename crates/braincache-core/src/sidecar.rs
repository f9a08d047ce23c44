//! Paths of the files a backend keeps beside its main file (a lock, a temp file, a stamp).

use std::ffi::OsString;
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
