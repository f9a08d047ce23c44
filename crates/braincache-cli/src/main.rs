#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod cache;
mod error;
mod output;

use braincache_core::Timestamp;
use braincache_file::inspect::{self as file_inspect, DocumentWriter};
use cache::{Cache, Item, Kind};
use clap::{Parser, Subcommand};
use error::{CliError, Result};
use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  get: the key is not in the cache, or its entry has expired; clear: not confirmed
  2  the command failed: bad arguments, a missing, unreadable, damaged or incompatible file,
     an unreachable Redis server";

/// Inspect, read, delete, purge, clear, export and import braincache caches.
///
/// Works on the files of braincache's JSON file backend and of its redb backend, and tells them
/// apart by content, and on a prefix of a Redis server (`--redis URL`). It never creates a
/// cache file, except as the destination of `import`. `inspect`, `keys`, `get` and `export`
/// only read: they take no lock and change nothing, and they work while programs use the
/// cache. (One exception: a redb file whose last writer exited without closing it is recovered
/// first, as the next program to open it would; a note says so.) `delete`, `purge`, `clear` and
/// `import` write through the backends themselves, with the same locking and durability as any
/// other process sharing the cache.
#[derive(Debug, Parser)]
#[command(name = "braincache", version, after_help = EXIT_CODES)]
struct Cli {
    /// The cache file's backend [default: told from the file's content]
    ///
    /// By default a file that starts with redb's magic number is read as a redb database, and
    /// anything else as the file backend's JSON document. For `import` into a file that does
    /// not exist yet, the default comes from its extension (`.json`, `.redb`).
    #[arg(long, value_enum, global = true, value_name = "BACKEND")]
    backend: Option<Kind>,

    /// Work on the entries under a key prefix on this Redis server instead of a file
    /// (`redis://[user:password@]host[:port][/db]`); give no FILE then. For `inspect`, `keys`,
    /// `get`, `delete`, `clear` and `export`.
    #[arg(long, global = true, value_name = "URL")]
    redis: Option<String>,

    /// With --redis: the cache's key prefix, as the program's `RedisBackend` was built with
    /// (`key_prefix`). Keys are shown without it [default: braincache:]
    #[arg(long, global = true, value_name = "PREFIX")]
    redis_prefix: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show what a cache holds: backend, entries, expired entries, next expiry, value bytes.
    ///
    /// Expired entries are counted until something purges them (`braincache purge`, a cache's
    /// cleaner). The next expiry is the earliest deadline still in the future.
    Inspect {
        /// The cache file (none with --redis).
        file: Option<PathBuf>,
        /// Also list every key with its value's size and the time it has left.
        #[arg(long)]
        keys: bool,
        /// Print a JSON object instead of text, for scripts.
        #[arg(long)]
        json: bool,
    },

    /// List the keys, one per line, in key order.
    ///
    /// Keys with control characters (a newline) or empty keys are printed quoted and escaped;
    /// --json prints them exactly.
    Keys {
        /// The cache file (none with --redis).
        file: Option<PathBuf>,
        /// Only the keys that start with this.
        #[arg(long, value_name = "P")]
        prefix: Option<String>,
        /// At most this many keys (the first ones in key order).
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Also the keys whose entry has expired (and was not purged yet).
        #[arg(long)]
        expired: bool,
        /// Print a JSON array of `{"key", "size", "expire_at", "expire_at_utc", "expired"}`.
        #[arg(long)]
        json: bool,
    },

    /// Print the value stored under a key.
    ///
    /// A value the backend can show as JSON prints as JSON: the file backend's values are JSON
    /// text. Other values (the redb and Redis backends' encoded values) print as hex. A key
    /// that is not there, or whose entry has expired, prints a message on standard error and
    /// exits with code 1.
    #[command(override_usage = "braincache get [OPTIONS] <FILE> <KEY>\n       \
                                braincache get [OPTIONS] --redis <URL> <KEY>")]
    Get {
        /// The cache file and the key (only the key with --redis).
        #[arg(required = true, num_args = 1..=2, value_names = ["FILE", "KEY"])]
        args: Vec<OsString>,
        /// Write the value's bytes to standard output exactly as stored, with no newline.
        #[arg(long, conflicts_with_all = ["hex", "json"])]
        raw: bool,
        /// Print the value as hex even when it can be shown as JSON.
        #[arg(long, conflicts_with = "json")]
        hex: bool,
        /// Print the value even if its entry has expired (and was not purged yet).
        #[arg(long)]
        expired: bool,
        /// Print a JSON object: `key`, `value` (the JSON, or null), `value_hex`, `size`,
        /// `expire_at`, `expire_at_utc`, `expired`.
        #[arg(long)]
        json: bool,
    },

    /// Delete keys; prints how many were there.
    ///
    /// When none of the keys is in a cache file, the file is not written at all.
    #[command(
        override_usage = "braincache delete [OPTIONS] <FILE> <KEY>...\n       \
                                braincache delete [OPTIONS] --redis <URL> <KEY>..."
    )]
    Delete {
        /// The cache file, then the keys to delete (only the keys with --redis).
        #[arg(required = true, value_names = ["FILE", "KEY"])]
        args: Vec<OsString>,
    },

    /// Remove the expired entries; prints how many.
    ///
    /// When nothing has expired, the file is not written at all.
    Purge {
        /// The cache file.
        file: Option<PathBuf>,
    },

    /// Remove every entry; prints how many there were.
    ///
    /// Asks for confirmation when standard input is a terminal; refuses without --yes
    /// otherwise. An empty cache file is not written.
    Clear {
        /// The cache file (none with --redis).
        file: Option<PathBuf>,
        /// Do not ask.
        #[arg(long, short = 'y')]
        yes: bool,
    },

    /// Write the whole cache as one JSON document in the file backend's format.
    ///
    /// The document is the format of the Python original and of braincache's file backend,
    /// which can open the result: `{"key": {"value": <JSON>, "expire_at": <Unix seconds> |
    /// null}}`. Values the backend cannot show as JSON are written as
    /// `{"$bytes": "<base64>"}`, so nothing is lost: opened with the file backend (or imported
    /// back), each entry reads back as the same bytes with the same deadline.
    Export {
        /// The cache file (none with --redis).
        file: Option<PathBuf>,
        /// Write the document to this file (replaced whole, atomically) instead of standard
        /// output; `-` is standard output.
        #[arg(short, long, value_name = "OUT")]
        output: Option<PathBuf>,
        /// Leave out entries that have expired.
        #[arg(long)]
        skip_expired: bool,
    },

    /// Shrink a redb cache file to its live pages (redb reuses freed pages but never gives
    /// them back). Refuses while any process has the file open.
    Compact {
        /// The cache file.
        file: PathBuf,
    },

    /// Store the entries of an exported (or Python-written) JSON document into a cache file:
    /// the inverse of `export`.
    ///
    /// Deadlines are kept to the nanosecond, and values read back as the bytes `export` read.
    /// Entries already in the cache under other keys stay; the document's keys are replaced.
    /// The cache file is created when it does not exist (its backend from --backend or its
    /// extension). Everything is stored in one write.
    Import {
        /// The JSON document (the file backend's format).
        json: PathBuf,
        /// The cache file to store the entries in.
        file: PathBuf,
        /// Leave out entries that have expired.
        #[arg(long)]
        skip_expired: bool,
    },
}

/// The last panic's report, printed by `main` if the panic is not caught on the way.
static PANIC: Mutex<Option<String>> = Mutex::new(None);

fn main() -> ExitCode {
    // A panic that a library catches and returns as an error (redb's, on a damaged file) is
    // not printed; one that reaches `main` is a bug in the command, reported once below.
    std::panic::set_hook(Box::new(|info| {
        let report = info.to_string();
        *PANIC
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(report);
    }));
    let cli = Cli::parse();
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            // Each level's `Display` says its own part only: print the causes after it.
            let mut line = format!("error: {e}");
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                line.push_str(&format!(": {c}"));
                cause = c.source();
            }
            let _ = writeln!(io::stderr(), "{line}");
            e.exit_code()
        }
        Err(_) => {
            let report = PANIC
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
                .unwrap_or_default();
            let _ = writeln!(
                io::stderr(),
                "error: internal error, please report it: {report}"
            );
            ExitCode::from(101)
        }
    }
}

/// Where the command's cache is, from the global options.
struct Target {
    backend: Option<Kind>,
    redis: Option<String>,
    redis_prefix: Option<String>,
}

impl Target {
    /// The cache named by `file`, or by `--redis` (for commands that take it).
    fn open(&self, file: Option<&Path>) -> Result<Cache> {
        match (&self.redis, file) {
            (Some(_), Some(file)) => Err(CliError::Usage(format!(
                "{}: give either a cache file or --redis, not both",
                file.display()
            ))),
            (Some(url), None) => {
                if self.backend.is_some() {
                    return Err(CliError::Usage(
                        "--backend is for cache files, not with --redis".to_owned(),
                    ));
                }
                let prefix = self.redis_prefix.as_deref().unwrap_or("braincache:");
                Cache::redis(url, prefix)
            }
            (None, Some(file)) => {
                self.no_redis_prefix()?;
                Cache::file(file, self.backend)
            }
            (None, None) => Err(CliError::Usage(
                "the cache file is missing (or give --redis URL)".to_owned(),
            )),
        }
    }

    /// Refuses --redis for a command that works on files only.
    fn file_only(&self, command: &str) -> Result<()> {
        if self.redis.is_some() {
            return Err(CliError::Usage(format!(
                "{command} works on cache files, not with --redis"
            )));
        }
        self.no_redis_prefix()
    }

    fn no_redis_prefix(&self) -> Result<()> {
        match self.redis_prefix {
            Some(_) => Err(CliError::Usage(
                "--redis-prefix is for --redis only".to_owned(),
            )),
            None => Ok(()),
        }
    }

    /// Splits `get`'s and `delete`'s positional arguments into the cache and the keys.
    fn open_with_keys(&self, args: Vec<OsString>) -> Result<(Cache, Vec<String>)> {
        let mut args = args.into_iter();
        let file = match self.redis {
            Some(_) => None,
            None => args.next().map(PathBuf::from),
        };
        let keys = args
            .map(|k| {
                k.into_string().map_err(|k| {
                    CliError::Usage(format!("key {k:?} is not UTF-8 (cache keys are strings)"))
                })
            })
            .collect::<Result<Vec<String>>>()?;
        if keys.is_empty() {
            return Err(CliError::Usage(
                "the key is missing (give the cache file, then the key)".to_owned(),
            ));
        }
        Ok((self.open(file.as_deref())?, keys))
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let now = Timestamp::now();
    let target = Target {
        backend: cli.backend,
        redis: cli.redis,
        redis_prefix: cli.redis_prefix,
    };
    let mut out = BufWriter::new(io::stdout().lock());
    let code = match cli.command {
        Command::Inspect { file, keys, json } => {
            let cache = target.open(file.as_deref())?;
            inspect(&cache, keys, json, now, &mut out)?;
            ExitCode::SUCCESS
        }
        Command::Keys {
            file,
            prefix,
            limit,
            expired,
            json,
        } => {
            let cache = target.open(file.as_deref())?;
            let shown = Shown {
                prefix: prefix.as_deref(),
                limit,
                expired,
                json,
            };
            keys(&cache, &shown, now, &mut out)?;
            ExitCode::SUCCESS
        }
        Command::Get {
            args,
            raw,
            hex,
            expired,
            json,
        } => {
            if args.len() > 1 && target.redis.is_some() {
                return Err(CliError::Usage(
                    "with --redis, get takes the key only".to_owned(),
                ));
            }
            let (cache, keys) = target.open_with_keys(args)?;
            let mode = match (raw, hex, json) {
                (true, _, _) => Print::Raw,
                (_, true, _) => Print::Hex,
                (_, _, true) => Print::Json,
                _ => Print::Auto,
            };
            get(&cache, &keys[0], mode, expired, now, &mut out)?
        }
        Command::Delete { args } => {
            let (cache, keys) = target.open_with_keys(args)?;
            let mut seen = HashSet::new();
            let keys: Vec<&str> = keys
                .iter()
                .map(String::as_str)
                .filter(|k| seen.insert(*k))
                .collect();
            let n = cache.delete(&keys)?;
            let noun = if keys.len() == 1 { "key" } else { "keys" };
            say(
                &mut out,
                format_args!("deleted {n} of {} {noun}", keys.len()),
            )?;
            ExitCode::SUCCESS
        }
        Command::Purge { file } => {
            target.file_only("purge (Redis expires entries by itself)")?;
            let cache = target.open(file.as_deref())?;
            let n = cache.purge(now)?;
            let noun = if n == 1 { "entry" } else { "entries" };
            say(&mut out, format_args!("purged {n} expired {noun}"))?;
            ExitCode::SUCCESS
        }
        Command::Clear { file, yes } => {
            let cache = target.open(file.as_deref())?;
            clear(&cache, yes, &mut out)?
        }
        Command::Export {
            file,
            output,
            skip_expired,
        } => {
            let cache = target.open(file.as_deref())?;
            let output = output.filter(|o| o.as_os_str() != "-");
            export(&cache, output.as_deref(), skip_expired, now, &mut out)?;
            ExitCode::SUCCESS
        }
        Command::Import {
            json,
            file,
            skip_expired,
        } => {
            target.file_only("import")?;
            import(&json, &file, target.backend, skip_expired, now, &mut out)?;
            ExitCode::SUCCESS
        }
        Command::Compact { file } => {
            let before = Cache::file(&file, Some(Kind::Redb))?
                .file_size()
                .unwrap_or(0);
            braincache_redb::RedbBackend::compact(&file)?;
            let after = fs::metadata(&file).map_or(0, |m| m.len());
            say(
                &mut out,
                format_args!("compacted: {before} -> {after} bytes"),
            )?;
            ExitCode::SUCCESS
        }
    };
    out.flush().map_err(CliError::Stdout)?;
    Ok(code)
}

fn say(out: &mut impl Write, line: std::fmt::Arguments<'_>) -> Result<()> {
    writeln!(out, "{line}").map_err(CliError::Stdout)
}

/// An entry as `inspect --json --keys` and `keys --json` list it.
fn key_json(item: &Item, now: Timestamp) -> serde_json::Value {
    serde_json::json!({
        "key": item.key,
        "size": item.raw.len(),
        "expire_at": item.expires_at.map(unix_secs),
        "expire_at_utc": item.expires_at.map(output::rfc3339),
        "expired": item.expired(now),
    })
}

fn inspect(
    cache: &Cache,
    list_keys: bool,
    json: bool,
    now: Timestamp,
    out: &mut impl Write,
) -> Result<()> {
    let items = cache.entries()?;
    let entries = items.len();
    let expired = items.iter().filter(|i| i.expired(now)).count();
    let value_bytes: u64 = items.iter().map(|i| i.raw.len() as u64).sum();
    let next = items
        .iter()
        .filter_map(|i| i.expires_at)
        .filter(|d| *d > now)
        .min();
    let (label, name) = cache.backend_names();

    if json {
        let mut doc = serde_json::json!({
            "backend": name,
            "entries": entries,
            "expired": expired,
            "next_expiry": next.map(unix_secs),
            "next_expiry_utc": next.map(output::rfc3339),
            "value_bytes": value_bytes,
        });
        match cache {
            Cache::File { path, size, kind } => {
                doc["file"] = path.display().to_string().into();
                doc["file_size"] = (*size).into();
                if *kind == Kind::Redb {
                    for (name, value) in braincache_redb::usage_report(path)? {
                        doc[name] = value.into();
                    }
                }
            }
            Cache::Redis { backend, shown } => {
                doc["redis"] = shown.as_str().into();
                doc["prefix"] = backend.key_prefix().into();
            }
        }
        if list_keys {
            doc["keys"] = items.iter().map(|i| key_json(i, now)).collect();
        }
        return say(out, format_args!("{doc:#}"));
    }

    let mut lines = match cache {
        Cache::File { path, .. } => vec![("file", path.display().to_string())],
        Cache::Redis { backend, shown } => vec![
            ("redis", shown.clone()),
            ("prefix", format!("{:?}", backend.key_prefix())),
        ],
    };
    lines.push(("backend", label.to_owned()));
    if let Some(size) = cache.file_size() {
        lines.push(("file size", format!("{size} bytes")));
    }
    lines.extend([
        ("entries", entries.to_string()),
        (
            "expired",
            if expired == 0 {
                "0".to_owned()
            } else {
                format!("{expired} (not purged yet)")
            },
        ),
        (
            "next expiry",
            next.map_or_else(|| "none".to_owned(), |d| output::deadline(d, now)),
        ),
        ("value bytes", value_bytes.to_string()),
    ]);
    if let Cache::File {
        path,
        kind: Kind::Redb,
        ..
    } = cache
    {
        lines.extend(braincache_redb::usage_report(path)?);
    }
    for (name, value) in lines.drain(..) {
        say(out, format_args!("{:<13}{value}", format!("{name}:")))?;
    }
    if list_keys && !items.is_empty() {
        let cells: Vec<(String, String, String)> = items
            .iter()
            .map(|i| {
                (
                    i.raw.len().to_string(),
                    output::ttl_left(i.expires_at, now),
                    output::display_key(&i.key),
                )
            })
            .collect();
        let size_w = cells.iter().map(|c| c.0.len()).max().unwrap_or(0).max(4);
        let ttl_w = cells.iter().map(|c| c.1.len()).max().unwrap_or(0).max(3);
        say(out, format_args!(""))?;
        say(
            out,
            format_args!("{:>size_w$}  {:<ttl_w$}  KEY", "SIZE", "TTL"),
        )?;
        for (size, ttl, key) in cells {
            say(out, format_args!("{size:>size_w$}  {ttl:<ttl_w$}  {key}"))?;
        }
    }
    Ok(())
}

/// What `keys` lists.
struct Shown<'a> {
    prefix: Option<&'a str>,
    limit: Option<usize>,
    expired: bool,
    json: bool,
}

fn keys(cache: &Cache, shown: &Shown<'_>, now: Timestamp, out: &mut impl Write) -> Result<()> {
    let items = cache.entries()?;
    let listed = items
        .iter()
        .filter(|i| shown.prefix.is_none_or(|p| i.key.starts_with(p)))
        .filter(|i| shown.expired || !i.expired(now))
        .take(shown.limit.unwrap_or(usize::MAX));
    if shown.json {
        let doc: serde_json::Value = listed.map(|i| key_json(i, now)).collect();
        return say(out, format_args!("{doc:#}"));
    }
    for i in listed {
        say(out, format_args!("{}", output::display_key(&i.key)))?;
    }
    Ok(())
}

/// Unix seconds to the millisecond, as the `f64` nearest that decimal, so JSON shows it short
/// (`1767225600.25`, not `1767225600.2499998`).
#[allow(clippy::cast_precision_loss)] // milliseconds stay below 2^53 until year 287,396
fn unix_secs(t: Timestamp) -> f64 {
    t.as_unix_millis() as f64 / 1000.0
}

/// How `get` prints a value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Print {
    /// JSON when the backend can show the value as JSON, anything else as hex.
    Auto,
    /// Always hex.
    Hex,
    /// The bytes as stored.
    Raw,
    /// A JSON object describing the entry.
    Json,
}

fn get(
    cache: &Cache,
    key: &str,
    mode: Print,
    show_expired: bool,
    now: Timestamp,
    out: &mut impl Write,
) -> Result<ExitCode> {
    let Some(item) = cache.get(key)? else {
        let _ = writeln!(
            io::stderr(),
            "not found: key {key:?} is not in {}",
            cache.name()
        );
        return Ok(ExitCode::from(1));
    };
    if let Some(d) = item.expires_at
        && d <= now
        && !show_expired
    {
        let _ = writeln!(
            io::stderr(),
            "expired: key {key:?} in {} expired at {}; it is not purged yet (--expired prints \
             it anyway)",
            cache.name(),
            output::deadline(d, now),
        );
        return Ok(ExitCode::from(1));
    }
    let value = &item.raw;
    let written = match (mode, &item.json) {
        (Print::Raw, _) => out.write_all(value),
        (Print::Auto, Some(json)) => writeln!(out, "{json}"),
        (Print::Auto | Print::Hex, _) => writeln!(out, "{}", output::hex(value)),
        (Print::Json, json) => {
            let mut doc = key_json(&item, now);
            doc["value"] = match json {
                Some(text) => serde_json::from_str(text).unwrap_or(serde_json::Value::Null),
                None => serde_json::Value::Null,
            };
            doc["value_hex"] = output::hex(value).into();
            writeln!(out, "{doc:#}")
        }
    };
    written.map_err(CliError::Stdout)?;
    Ok(ExitCode::SUCCESS)
}

fn clear(cache: &Cache, yes: bool, out: &mut impl Write) -> Result<ExitCode> {
    let stdin = io::stdin();
    if !yes && !stdin.is_terminal() {
        return Err(CliError::Usage(format!(
            "{}: clear deletes every entry; standard input is not a terminal to ask on, so \
             confirm with --yes",
            cache.name()
        )));
    }
    let count = cache.entries()?.len();
    if !yes && count > 0 {
        let noun = if count == 1 { "entry" } else { "entries" };
        eprint!("delete all {count} {noun} of {}? [y/N] ", cache.name());
        let mut answer = String::new();
        stdin
            .lock()
            .read_line(&mut answer)
            .map_err(|e| CliError::io("cannot read", "standard input", e))?;
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
            let _ = writeln!(io::stderr(), "not cleared: {} is unchanged", cache.name());
            return Ok(ExitCode::from(1));
        }
    }
    let n = cache.clear(count)?;
    let noun = if n == 1 { "entry" } else { "entries" };
    say(out, format_args!("cleared {n} {noun}"))?;
    Ok(ExitCode::SUCCESS)
}

fn export(
    cache: &Cache,
    dest: Option<&Path>,
    skip_expired: bool,
    now: Timestamp,
    out: &mut impl Write,
) -> Result<()> {
    let items = cache.entries()?;
    let write_doc = |w: &mut dyn Write| -> io::Result<usize> {
        let mut doc = DocumentWriter::new(w)?;
        for item in &items {
            if skip_expired && item.expired(now) {
                continue;
            }
            doc.entry(&item.key, item.expires_at, &item.export_value())?;
        }
        doc.finish().map(|(_, n)| n)
    };
    let Some(dest) = dest else {
        return write_doc(out).map(drop).map_err(CliError::Stdout);
    };
    if let Cache::File { path, .. } = cache
        && same_file(path, dest)
    {
        return Err(CliError::Usage(format!(
            "{}: the export would replace the cache it reads; choose another --output",
            dest.display()
        )));
    }
    let n = write_atomically(dest, write_doc)?;
    let noun = if n == 1 { "entry" } else { "entries" };
    say(
        out,
        format_args!("exported {n} {noun} to {}", dest.display()),
    )
}

fn import(
    json: &Path,
    file: &Path,
    backend: Option<Kind>,
    skip_expired: bool,
    now: Timestamp,
    out: &mut impl Write,
) -> Result<()> {
    // The document is checked like a cache file: it must exist and be a regular file.
    Cache::file(json, Some(Kind::File))?;
    if same_file(json, file) {
        return Err(CliError::Usage(format!(
            "{}: the document and the cache are the same file",
            file.display()
        )));
    }
    let mut entries = file_inspect::read(json)?;
    if skip_expired {
        entries.retain(|e| e.expires_at.is_none_or(|d| d > now));
    }
    let cache = Cache::target(file, backend)?;
    let n = cache.import(entries)?;
    let noun = if n == 1 { "entry" } else { "entries" };
    say(
        out,
        format_args!("imported {n} {noun} into {}", file.display()),
    )
}

/// Writes `dest` whole through `write` into a temporary file beside it, fsynced, then renamed
/// over it, so that `dest` is never seen half-written. Returns what `write` returned.
fn write_atomically(
    dest: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<usize>,
) -> Result<usize> {
    let (tmp, mut f) = temp_beside(dest)?;
    // Errors name the output the user asked for, not the temporary file beside it.
    let cannot_write = |e| CliError::io("cannot write", dest, e);
    let result = (|| {
        let mut w = BufWriter::new(&mut f);
        let n = write(&mut w).map_err(cannot_write)?;
        w.flush().map_err(cannot_write)?;
        drop(w);
        f.sync_all().map_err(cannot_write)?;
        fs::rename(&tmp, dest).map_err(cannot_write)?;
        Ok(n)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// True when `a` and `b` name the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Creates a new temporary file in `dest`'s folder, to be renamed over `dest` once complete, so
/// that `dest` is never seen half-written.
fn temp_beside(dest: &Path) -> Result<(PathBuf, File)> {
    let name = dest
        .file_name()
        .ok_or_else(|| CliError::Usage(format!("{}: not a path to a file", dest.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.export-tmp", std::process::id()));
    let tmp = dest.with_file_name(tmp_name);
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| CliError::io("cannot write", dest, e))?;
    Ok((tmp, f))
}
