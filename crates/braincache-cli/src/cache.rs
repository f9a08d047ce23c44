//! Finding and opening a cache: a file (which backend wrote it is told by the backends' own
//! `inspect::detect`) or a Redis prefix. Reads go through the backends' `inspect` modules and
//! write nothing (except the crash recovery a redb file may need); writes go through the
//! backends themselves.

use crate::error::{CliError, Result};
use braincache_core::{Backend, CodecId, Record, Timestamp};
use braincache_file::FileBackend;
use braincache_file::inspect::{self as file_inspect, Value};
use braincache_redb::RedbBackend;
use braincache_redb::inspect as redb_inspect;
use braincache_redis::RedisBackend;
use braincache_redis::inspect as redis_inspect;
use std::io;
use std::path::{Path, PathBuf};

/// The backend a cache file belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Kind {
    /// The JSON file backend (`braincache_file::FileBackend`).
    File,
    /// The redb backend (`braincache_redb::RedbBackend`).
    Redb,
}

impl Kind {
    /// Tells the backend by content: a file the redb backend recognizes is its; anything else is
    /// taken for the JSON file backend's document (whose reader then reports, with line and
    /// column, what is wrong with a file that is neither). A zero-length file is an empty JSON
    /// cache, as the file backend reads it.
    fn detect(path: &Path) -> Result<Kind> {
        Ok(if redb_inspect::detect(path)? {
            Kind::Redb
        } else {
            Kind::File
        })
    }

    /// Picks the backend of a file that does not exist yet from its extension.
    fn from_extension(path: &Path) -> Option<Kind> {
        match path.extension()?.to_str()? {
            "json" => Some(Kind::File),
            "redb" => Some(Kind::Redb),
            _ => None,
        }
    }
}

/// One entry as the commands show it.
#[derive(Clone, Debug)]
pub(crate) struct Item {
    pub(crate) key: String,
    /// `None`: never expires.
    pub(crate) expires_at: Option<Timestamp>,
    /// The value's bytes as stored (what the backend's `get` returns).
    pub(crate) raw: Vec<u8>,
    /// The value as JSON text, when the backend's format can show it as JSON.
    pub(crate) json: Option<String>,
    /// The codec the value was written with, when the store says.
    pub(crate) codec: Option<CodecId>,
}

impl Item {
    /// An entry of a backend whose default codec is MessagePack (redb, Redis).
    fn from_record(key: String, record: Record, json: fn(&Record) -> Option<String>) -> Item {
        Item {
            json: json(&record),
            key,
            expires_at: record.expires_at,
            codec: Some(record.codec.unwrap_or(CodecId::MSGPACK)),
            raw: record.value,
        }
    }

    /// True when the entry has expired at `now`.
    pub(crate) fn expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|d| d <= now)
    }

    /// The value as an export document holds it: its JSON when there is one, else its bytes.
    pub(crate) fn export_value(&self) -> Value {
        match (&self.json, self.codec) {
            (Some(text), _) => Value::Json(text.clone()),
            (None, None | Some(CodecId::JSON)) => Value::Bytes(self.raw.clone()),
            // Bytes of another codec keep its id, so they read back as that codec's, never as
            // JSON (see the file format's `$codec`).
            (None, Some(codec)) => Value::Coded(self.raw.clone(), codec),
        }
    }
}

/// Where a command's cache is.
pub(crate) enum Cache {
    /// A cache file of one of the durable backends.
    File {
        path: PathBuf,
        kind: Kind,
        size: u64,
    },
    /// The entries under a prefix on a Redis server.
    Redis {
        backend: Box<RedisBackend>,
        /// The URL as the command shows it (password hidden).
        shown: String,
    },
}

impl Cache {
    /// An existing cache file (it is never created), of the backend `forced` or the one its
    /// content tells.
    pub(crate) fn file(path: &Path, forced: Option<Kind>) -> Result<Cache> {
        let size = check_file(path)?;
        let kind = match forced {
            Some(k) => k,
            None => Kind::detect(path)?,
        };
        Ok(Cache::File {
            path: path.to_path_buf(),
            kind,
            size,
        })
    }

    /// A cache file that `import` may create: an existing one as [`Cache::file`] opens it; a
    /// missing one of the backend `forced` or that its extension names.
    pub(crate) fn target(path: &Path, forced: Option<Kind>) -> Result<Cache> {
        match Cache::file(path, forced) {
            Err(CliError::Missing { .. }) => {
                let kind = forced
                    .or_else(|| Kind::from_extension(path))
                    .ok_or_else(|| {
                        CliError::Usage(format!(
                            "{}: no such file, and its backend cannot be told from its name: \
                         give --backend file or --backend redb (or name it *.json or *.redb)",
                            path.display()
                        ))
                    })?;
                Ok(Cache::File {
                    path: path.to_path_buf(),
                    kind,
                    size: 0,
                })
            }
            other => other,
        }
    }

    /// The entries under `prefix` on the Redis server at `url`.
    pub(crate) fn redis(url: &str, prefix: &str) -> Result<Cache> {
        let backend = RedisBackend::builder(url).key_prefix(prefix).build()?;
        Ok(Cache::Redis {
            backend: Box::new(backend),
            shown: redact(url),
        })
    }

    /// What the cache is, for messages: the file's path, or the URL and prefix.
    pub(crate) fn name(&self) -> String {
        match self {
            Cache::File { path, .. } => path.display().to_string(),
            Cache::Redis { backend, shown } => {
                format!("{shown} (prefix {:?})", backend.key_prefix())
            }
        }
    }

    /// The backend's name as `inspect` shows it, and as `inspect --json` shows it.
    pub(crate) fn backend_names(&self) -> (&'static str, &'static str) {
        match self {
            Cache::File {
                kind: Kind::File, ..
            } => ("file (JSON)", "file"),
            Cache::File {
                kind: Kind::Redb, ..
            } => (braincache_redb::BACKEND_NAME, braincache_redb::BACKEND_NAME),
            Cache::Redis { .. } => (
                braincache_redis::BACKEND_NAME,
                braincache_redis::BACKEND_NAME,
            ),
        }
    }

    /// The file's size in bytes, for a file.
    pub(crate) fn file_size(&self) -> Option<u64> {
        match self {
            Cache::File { size, .. } => Some(*size),
            Cache::Redis { .. } => None,
        }
    }

    /// Every entry, expired ones included (until something purges them), sorted by key. Writes
    /// nothing, except that a redb file whose last writer died without closing it is recovered
    /// first (a note on standard error says so).
    pub(crate) fn entries(&self) -> Result<Vec<Item>> {
        Ok(match self {
            Cache::File {
                path,
                kind: Kind::File,
                ..
            } => file_inspect::read(path)?
                .into_iter()
                .map(|e| Item {
                    json: e.value.as_json().map(str::to_owned),
                    codec: e.value.codec(),
                    key: e.key,
                    expires_at: e.expires_at,
                    raw: e.value.into_record(),
                })
                .collect(),
            Cache::File {
                path,
                kind: Kind::Redb,
                ..
            } => {
                let contents = redb_inspect::read(path)?;
                if contents.recovered {
                    note_recovered(path);
                }
                contents
                    .entries
                    .into_iter()
                    .map(|(k, r)| Item::from_record(k, r, redb_inspect::value_json))
                    .collect()
            }
            Cache::Redis { backend, .. } => redis_inspect::entries(backend)?
                .into_iter()
                .map(|(k, r)| Item::from_record(k, r, redis_inspect::value_json))
                .collect(),
        })
    }

    /// The entry stored under `key`, expired or not.
    pub(crate) fn get(&self, key: &str) -> Result<Option<Item>> {
        if let Cache::Redis { backend, .. } = self {
            let record = Backend::get(&**backend, key)?;
            return Ok(
                record.map(|r| Item::from_record(key.to_owned(), r, redis_inspect::value_json))
            );
        }
        let entries = self.entries()?;
        Ok(entries
            .binary_search_by(|e| e.key.as_str().cmp(key))
            .ok()
            .map(|i| entries[i].clone()))
    }

    /// Deletes `keys` through the backend; returns how many were there.
    ///
    /// A file is first read without writing; when none of the keys is there it is not opened for
    /// writing at all, so it stays byte for byte as it was (opening a cache file for writing may
    /// rewrite its header, and both backends create sidecar files).
    pub(crate) fn delete(&self, keys: &[&str]) -> Result<usize> {
        if let Cache::Redis { backend, .. } = self {
            return Ok(Backend::delete_many(&**backend, keys)?);
        }
        let entries = self.entries()?;
        let present = keys
            .iter()
            .filter(|k| entries.binary_search_by(|e| e.key.as_str().cmp(k)).is_ok())
            .count();
        if present == 0 {
            return Ok(0);
        }
        self.with_backend(|b| b.delete_many(keys))
    }

    /// Removes the entries whose deadline is at or before `now` through the backend; returns how
    /// many. As with [`Cache::delete`], a file with nothing to purge is not opened for writing.
    /// Redis expires entries by itself: nothing to purge there.
    pub(crate) fn purge(&self, now: Timestamp) -> Result<usize> {
        if let Cache::Redis { .. } = self {
            return Ok(0);
        }
        let due = self.entries()?.iter().filter(|e| e.expired(now)).count();
        if due == 0 {
            return Ok(0);
        }
        self.with_backend(|b| b.purge_expired(now))
    }

    /// Removes every entry through the backend; returns how many there were. An empty file is
    /// not opened for writing.
    pub(crate) fn clear(&self, count: usize) -> Result<usize> {
        if count == 0 {
            return Ok(0);
        }
        self.with_backend(|b| b.clear())?;
        Ok(count)
    }

    /// Stores `entries` (from an export document) through the backend, in one write, deadlines
    /// kept; other entries stay. Creates the file when it is missing.
    pub(crate) fn import(&self, entries: Vec<file_inspect::Entry>) -> Result<usize> {
        let n = entries.len();
        let records: Vec<(String, Record)> = entries
            .into_iter()
            .map(|e| {
                // Values keep their codec: a file's values are JSON (or say their codec); JSON
                // values going into redb or Redis become MessagePack, their default codec, when
                // strict JSON, and otherwise stay JSON text stating the JSON codec.
                let (value, codec) = match (self, e.value) {
                    (
                        Cache::File {
                            kind: Kind::File, ..
                        },
                        v,
                    ) => {
                        let codec = v.codec();
                        (v.into_record(), codec)
                    }
                    (_, Value::Json(text)) => match redb_inspect::value_from_json(&text) {
                        Some(bytes) => (bytes, Some(CodecId::MSGPACK)),
                        None => (text.into_bytes(), Some(CodecId::JSON)),
                    },
                    (_, Value::Bytes(b)) => (b, Some(CodecId::JSON)),
                    (_, Value::Coded(b, id)) => (b, Some(id)),
                };
                (e.key, Record::new(value, e.expires_at).with_codec(codec))
            })
            .collect();
        if n > 0 {
            self.with_backend(|b| b.set_many(records))?;
        }
        Ok(n)
    }

    /// Runs a write through the cache's backend, opened as any program opens it.
    fn with_backend<T>(
        &self,
        f: impl FnOnce(&dyn CacheWrites) -> braincache_core::Result<T>,
    ) -> Result<T> {
        Ok(match self {
            Cache::File {
                path,
                kind: Kind::File,
                ..
            } => f(&FileBackend::open(path)?)?,
            Cache::File {
                path,
                kind: Kind::Redb,
                ..
            } => f(&RedbBackend::open(path)?)?,
            Cache::Redis { backend, .. } => f(&**backend)?,
        })
    }
}

/// The writes the commands make, on any backend.
pub(crate) trait CacheWrites {
    fn delete_many(&self, keys: &[&str]) -> braincache_core::Result<usize>;
    fn purge_expired(&self, now: Timestamp) -> braincache_core::Result<usize>;
    fn clear(&self) -> braincache_core::Result<()>;
    fn set_many(&self, entries: Vec<(String, Record)>) -> braincache_core::Result<()>;
}

impl<B: Backend> CacheWrites for B {
    fn delete_many(&self, keys: &[&str]) -> braincache_core::Result<usize> {
        Backend::delete_many(self, keys)
    }
    fn purge_expired(&self, now: Timestamp) -> braincache_core::Result<usize> {
        Backend::purge_expired(self, now)
    }
    fn clear(&self) -> braincache_core::Result<()> {
        Backend::clear(self)
    }
    fn set_many(&self, entries: Vec<(String, Record)>) -> braincache_core::Result<()> {
        Backend::set_many(self, entries)
    }
}

/// Tells the user that reading wrote to the file.
fn note_recovered(path: &Path) {
    use std::io::Write as _;
    let _ = writeln!(
        io::stderr(),
        "note: {} was not closed cleanly (a process that wrote it exited without closing it); \
         it was recovered before reading, as the next program to open it would have done",
        path.display()
    );
}

/// Checks that `path` is an existing regular file (symbolic links followed) and returns its size.
/// Nothing is created when it is missing.
fn check_file(path: &Path) -> Result<u64> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(m.len()),
        Ok(_) => Err(CliError::NotAFile {
            path: path.to_path_buf(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(CliError::Missing {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(CliError::io("cannot read", path, e)),
    }
}

/// `url` with the password (and user name) replaced by `***`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme + 3 => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_credentials() {
        assert_eq!(
            redact("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(
            redact("redis://user:secret@host:6379/2"),
            "redis://***@host:6379/2"
        );
        assert_eq!(redact("redis://:p@ss@host/0"), "redis://***@host/0");
    }
}
