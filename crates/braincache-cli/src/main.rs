#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod cache;
mod error;
mod output;

use braincache_core::{CodecId, Timestamp};
use cache::{Kind, Reader};
use clap::{Parser, Subcommand};
use error::{CliError, Result};
use output::{Document, ValueForm};
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  get: the key is not in the cache, or its entry has expired
  2  the command failed: bad arguments, a missing, unreadable, damaged or incompatible file";

/// Inspect, read, delete, purge and export braincache cache files.
///
/// Works on the files of braincache's JSON file backend and of its redb backend, and tells them
/// apart by content. It never creates a cache file. `inspect`, `get` and `export` only read:
/// they take no lock and change nothing, and they work while programs use the cache. `delete`
/// and `purge` write through the backends themselves, with the same locking and durability as
/// any other process sharing the cache.
#[derive(Debug, Parser)]
#[command(name = "braincache", version, after_help = EXIT_CODES)]
struct Cli {
    /// The cache's backend [default: told from the file's content]
    ///
    /// By default a file that starts with redb's magic number is read as a redb database, and
    /// anything else as the file backend's JSON document.
    #[arg(long, value_enum, global = true, value_name = "BACKEND")]
    backend: Option<Kind>,

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
        /// The cache file.
        file: PathBuf,
        /// Also list every key with its value's size and the time it has left.
        #[arg(long)]
        keys: bool,
        /// Print a JSON object instead of text, for scripts.
        #[arg(long)]
        json: bool,
    },

    /// Print the value stored under a key.
    ///
    /// The file backend's values are JSON and print as such. The redb backend's values are
    /// codec bytes (MessagePack by default): they print as hex.
    /// A key that is not there, or whose entry has expired, prints a message on standard error
    /// and exits with code 1.
    Get {
        /// The cache file.
        file: PathBuf,
        /// The key.
        key: String,
        /// Write the value's bytes to standard output exactly as stored, with no newline.
        #[arg(long, conflicts_with = "hex")]
        raw: bool,
        /// Print the value as hex even when it is JSON text.
        #[arg(long)]
        hex: bool,
        /// Print the value even if its entry has expired (and was not purged yet).
        #[arg(long)]
        expired: bool,
    },

    /// Delete keys; prints how many were there.
    ///
    /// When none of the keys is there, the file is not written at all.
    Delete {
        /// The cache file.
        file: PathBuf,
        /// The keys to delete.
        #[arg(required = true)]
        keys: Vec<String>,
    },

    /// Remove the expired entries; prints how many.
    ///
    /// When nothing has expired, the file is not written at all.
    Purge {
        /// The cache file.
        file: PathBuf,
    },

    /// Write the whole cache as one JSON document in the file backend's format.
    ///
    /// The document is `{"key": {"value": <JSON>, "expire_at": <Unix seconds> | null}}`, the
    /// format of the Python original and of braincache's file backend, which can open the
    /// result. redb values written with the MessagePack codec (the default) are written as JSON
    /// where JSON can hold them, so the file backend's `Json` codec reads them back as the same
    /// typed values. Other values are written as `{"$bytes": "<base64>"}` (plus `"$codec": <id>`
    /// for a codec other than JSON), so nothing is lost: opened with the file backend, each
    /// entry reads back as the same bytes, codec and deadline.
    Export {
        /// The cache file.
        file: PathBuf,
        /// Write the document to this file (replaced whole, atomically) instead of standard
        /// output; `-` is standard output.
        #[arg(short, long, value_name = "OUT")]
        output: Option<PathBuf>,
        /// Leave out entries that have expired.
        #[arg(long)]
        skip_expired: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(io::stderr(), "error: {e}");
            e.exit_code()
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let now = Timestamp::now();
    let mut out = BufWriter::new(io::stdout().lock());
    let code = match cli.command {
        Command::Inspect { file, keys, json } => {
            let (kind, size) = open(&file, cli.backend)?;
            inspect(&file, kind, size, keys, json, now, &mut out)?;
            ExitCode::SUCCESS
        }
        Command::Get {
            file,
            key,
            raw,
            hex,
            expired,
        } => {
            let (kind, _) = open(&file, cli.backend)?;
            let mode = match (raw, hex) {
                (true, _) => Print::Raw,
                (_, true) => Print::Hex,
                _ => Print::Auto,
            };
            get(&file, kind, &key, mode, expired, now, &mut out)?
        }
        Command::Delete { file, keys } => {
            let (kind, _) = open(&file, cli.backend)?;
            let mut seen = HashSet::new();
            let keys: Vec<&str> = keys
                .iter()
                .map(String::as_str)
                .filter(|k| seen.insert(*k))
                .collect();
            let n = cache::delete(&file, kind, &keys)?;
            let noun = if keys.len() == 1 { "key" } else { "keys" };
            say(
                &mut out,
                format_args!("deleted {n} of {} {noun}", keys.len()),
            )?;
            ExitCode::SUCCESS
        }
        Command::Purge { file } => {
            let (kind, _) = open(&file, cli.backend)?;
            let n = cache::purge(&file, kind, now)?;
            let noun = if n == 1 { "entry" } else { "entries" };
            say(&mut out, format_args!("purged {n} expired {noun}"))?;
            ExitCode::SUCCESS
        }
        Command::Export {
            file,
            output,
            skip_expired,
        } => {
            let (kind, _) = open(&file, cli.backend)?;
            let output = output.filter(|o| o.as_os_str() != "-");
            export(&file, kind, output.as_deref(), skip_expired, now, &mut out)?;
            ExitCode::SUCCESS
        }
    };
    out.flush().map_err(CliError::Stdout)?;
    Ok(code)
}

/// Checks that the file exists (it is never created) and picks its backend.
fn open(file: &Path, forced: Option<Kind>) -> Result<(Kind, u64)> {
    let size = cache::check_file(file)?;
    let kind = match forced {
        Some(k) => k,
        None => cache::detect(file)?,
    };
    Ok((kind, size))
}

fn say(out: &mut impl Write, line: std::fmt::Arguments<'_>) -> Result<()> {
    writeln!(out, "{line}").map_err(CliError::Stdout)
}

/// Per-key facts `inspect --keys` lists.
struct KeyRow {
    key: String,
    size: usize,
    deadline: Option<Timestamp>,
}

fn inspect(
    file: &Path,
    kind: Kind,
    file_size: u64,
    list_keys: bool,
    json: bool,
    now: Timestamp,
    out: &mut impl Write,
) -> Result<()> {
    let reader = Reader::open(file, kind)?;
    let (mut entries, mut expired, mut value_bytes) = (0usize, 0usize, 0u64);
    let mut next: Option<Timestamp> = None;
    let mut rows = Vec::new();
    reader.scan(&mut |key, deadline, value| {
        entries += 1;
        value_bytes += value.len() as u64;
        match deadline {
            Some(d) if d <= now => expired += 1,
            Some(d) => next = Some(next.map_or(d, |n| n.min(d))),
            None => {}
        }
        if list_keys {
            rows.push(KeyRow {
                key: key.to_owned(),
                size: value.len(),
                deadline,
            });
        }
        Ok(())
    })?;
    drop(reader);

    if json {
        let mut doc = serde_json::json!({
            "file": file.display().to_string(),
            "backend": kind.name(),
            "file_size": file_size,
            "entries": entries,
            "expired": expired,
            "next_expiry": next.map(unix_secs),
            "next_expiry_utc": next.map(output::rfc3339),
            "value_bytes": value_bytes,
        });
        if list_keys {
            doc["keys"] = rows
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "key": r.key,
                        "size": r.size,
                        "expire_at": r.deadline.map(unix_secs),
                        "expire_at_utc": r.deadline.map(output::rfc3339),
                        "expired": r.deadline.is_some_and(|d| d <= now),
                    })
                })
                .collect();
        }
        return say(out, format_args!("{doc:#}"));
    }

    let mut lines = vec![
        ("file", file.display().to_string()),
        ("backend", kind.label().to_owned()),
        ("file size", format!("{file_size} bytes")),
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
    ];
    for (name, value) in lines.drain(..) {
        say(out, format_args!("{:<13}{value}", format!("{name}:")))?;
    }
    if list_keys && !rows.is_empty() {
        let cells: Vec<(String, String, String)> = rows
            .iter()
            .map(|r| {
                (
                    r.size.to_string(),
                    output::ttl_left(r.deadline, now),
                    output::display_key(&r.key),
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

/// Unix seconds to the millisecond, as the `f64` nearest that decimal, so JSON shows it short
/// (`1767225600.25`, not `1767225600.2499998`).
#[allow(clippy::cast_precision_loss)] // milliseconds stay below 2^53 until year 287,396
fn unix_secs(t: Timestamp) -> f64 {
    t.as_unix_millis() as f64 / 1000.0
}

/// How `get` prints a value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Print {
    /// JSON text as it is, anything else as hex.
    Auto,
    /// Always hex.
    Hex,
    /// The bytes as stored.
    Raw,
}

fn get(
    file: &Path,
    kind: Kind,
    key: &str,
    mode: Print,
    show_expired: bool,
    now: Timestamp,
    out: &mut impl Write,
) -> Result<ExitCode> {
    let reader = Reader::open(file, kind)?;
    let Some(record) = reader.get(key)? else {
        let _ = writeln!(
            io::stderr(),
            "not found: key {key:?} is not in {}",
            file.display()
        );
        return Ok(ExitCode::from(1));
    };
    if let Some(d) = record.expires_at
        && d <= now
        && !show_expired
    {
        let _ = writeln!(
            io::stderr(),
            "expired: key {key:?} in {} expired at {}; it is not purged yet (--expired prints \
             it anyway)",
            file.display(),
            output::deadline(d, now),
        );
        return Ok(ExitCode::from(1));
    }
    let value = &record.value;
    let written = match mode {
        Print::Raw => out.write_all(value),
        Print::Auto if kind == Kind::File && output::is_exact_json(value) => {
            out.write_all(value).and_then(|()| out.write_all(b"\n"))
        }
        Print::Auto | Print::Hex => writeln!(out, "{}", output::hex(value)),
    };
    written.map_err(CliError::Stdout)?;
    Ok(ExitCode::SUCCESS)
}

fn export(
    file: &Path,
    kind: Kind,
    dest: Option<&Path>,
    skip_expired: bool,
    now: Timestamp,
    out: &mut impl Write,
) -> Result<()> {
    let reader = Reader::open(file, kind)?;
    // Write errors travel as `CliError::Stdout`; for a file they are renamed.
    let write_doc = |w: &mut dyn Write| -> Result<usize> {
        let mut doc = Document::start(w).map_err(CliError::Stdout)?;
        for (key, record) in reader.records() {
            let deadline = record.expires_at;
            if skip_expired && deadline.is_some_and(|d| d <= now) {
                continue;
            }
            let written = match kind {
                Kind::File => match record.codec {
                    None | Some(CodecId::JSON) => {
                        doc.entry(key, deadline, &record.value, ValueForm::JsonWhenPossible)
                    }
                    Some(codec) => doc.entry(key, deadline, &record.value, ValueForm::Coded(codec)),
                },
                // MessagePack values become JSON where JSON holds them, so the export reads back
                // typed through the file backend's `Json` codec; others keep their codec id.
                Kind::Redb => match braincache_redb::value_as_json(record) {
                    Some(json) => doc.entry(key, deadline, &json, ValueForm::JsonWhenPossible),
                    None => {
                        let codec = record.codec.unwrap_or(CodecId::MSGPACK);
                        doc.entry(key, deadline, &record.value, ValueForm::Coded(codec))
                    }
                },
            };
            written.map_err(CliError::Stdout)?;
        }
        doc.finish().map(|(_, n)| n).map_err(CliError::Stdout)
    };
    let Some(dest) = dest else {
        return write_doc(out).map(drop);
    };
    if same_file(file, dest) {
        return Err(CliError::Usage(format!(
            "{}: the export would replace the cache it reads; choose another --output",
            dest.display()
        )));
    }
    let (tmp, mut f) = temp_beside(dest)?;
    // Errors name the output the user asked for, not the temporary file beside it.
    let cannot_write = |e| CliError::io("cannot write", dest, e);
    let result = (|| {
        let mut w = BufWriter::new(&mut f);
        let n = write_doc(&mut w).map_err(|e| match e {
            CliError::Stdout(e) => cannot_write(e),
            e => e,
        })?;
        w.flush().map_err(cannot_write)?;
        drop(w);
        f.sync_all().map_err(cannot_write)?;
        fs::rename(&tmp, dest).map_err(|e| CliError::io("cannot write", dest, e))?;
        Ok(n)
    })();
    match result {
        Ok(n) => {
            let noun = if n == 1 { "entry" } else { "entries" };
            say(
                out,
                format_args!("exported {n} {noun} to {}", dest.display()),
            )
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
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
