//! File-level behaviour: sharing one file between handles, damaged files, I/O errors, batched
//! mode, and what is on disk. Two handles on one file stand in for two processes here (each has
//! its own memory, file handles and lock); `tests/file.rs` in the facade uses real processes.

use braincache_core::{Backend, Error, Record, Timestamp};
use braincache_file::FileBackend;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn rec(v: &str) -> Record {
    Record::new(v.as_bytes().to_vec(), None)
}

fn value(b: &FileBackend, key: &str) -> Option<String> {
    b.get(key)
        .unwrap()
        .map(|r| String::from_utf8(r.value).unwrap())
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.json");
    (dir, path)
}

fn batched(path: &Path, every: Duration) -> FileBackend {
    FileBackend::builder(path)
        .flush_every(every)
        .build()
        .unwrap()
}

#[test]
fn open_creates_an_empty_file_and_a_zero_length_file_is_empty() {
    let (_dir, path) = setup();
    let b = FileBackend::open(&path).unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"");
    assert!(path.with_file_name("cache.json.lock").exists());
    assert_eq!(b.len().unwrap(), 0);
    b.set("k", rec("1")).unwrap();
    b.delete("k").unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "{}\n");
    drop(b);
    fs::write(&path, b"").unwrap();
    assert_eq!(FileBackend::open(&path).unwrap().len().unwrap(), 0);
}

#[test]
fn a_handle_sees_another_handles_writes_even_within_one_mtime_tick() {
    let (_dir, path) = setup();
    let a = FileBackend::open(&path).unwrap();
    let b = FileBackend::open(&path).unwrap();
    // Same size every time and far faster than the file system's timestamp tick: only the
    // inode tells these versions apart.
    for i in 0..100 {
        let v = format!("{:03}", i % 1000);
        b.set("k", rec(&v)).unwrap();
        assert_eq!(value(&a, "k").as_deref(), Some(v.as_str()), "round {i}");
        a.set("k2", rec(&v)).unwrap();
        assert_eq!(value(&b, "k2").as_deref(), Some(v.as_str()), "round {i}");
    }
    assert!(b.delete("k2").unwrap());
    assert_eq!(a.len().unwrap(), 1);
    a.clear().unwrap();
    assert_eq!(b.len().unwrap(), 0);
}

/// The file systems reuse a freed inode number at once (ext4 does), so a handle whose version
/// of the file was replaced twice could see "its" inode number again, with the same size and
/// mtime tick. The handle keeps its version open so the number cannot be reused.
#[test]
fn an_inode_number_is_not_reused_behind_a_handles_back() {
    let (_dir, path) = setup();
    let a = FileBackend::open(&path).unwrap();
    let b = FileBackend::open(&path).unwrap();
    for i in 0..200 {
        a.set("k", rec(&format!("{:04}", i * 3))).unwrap();
        b.set("k", rec(&format!("{:04}", i * 3 + 1))).unwrap();
        b.set("k", rec(&format!("{:04}", i * 3 + 2))).unwrap();
        let want = format!("{:04}", i * 3 + 2);
        assert_eq!(value(&a, "k").as_deref(), Some(want.as_str()), "round {i}");
    }
}

#[test]
fn writers_on_one_file_lose_nothing_in_either_mode() {
    let (_dir, path) = setup();
    let durable = FileBackend::open(&path).unwrap();
    let lazy = batched(&path, Duration::from_secs(3600));
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..40 {
                durable.set(&format!("d{i}"), rec("1")).unwrap();
            }
        });
        s.spawn(|| {
            for i in 0..40 {
                lazy.set(&format!("b{i}"), rec("2")).unwrap();
                if i % 10 == 0 {
                    lazy.flush().unwrap();
                }
            }
        });
    });
    lazy.delete("d0").unwrap(); // a delete of the other handle's key (written at once)
    lazy.flush().unwrap();
    let fresh = FileBackend::open(&path).unwrap();
    assert_eq!(fresh.len().unwrap(), 79);
    assert_eq!(fresh.get("d0").unwrap(), None);
    assert_eq!(value(&fresh, "d39").as_deref(), Some("1"));
    assert_eq!(value(&fresh, "b39").as_deref(), Some("2"));
}

#[test]
fn batched_changes_reach_the_file_on_flush_on_tick_and_on_drop() {
    let (_dir, path) = setup();
    let b = batched(&path, Duration::from_secs(3600));
    assert_eq!(b.flush_every(), Some(Duration::from_secs(3600)));
    assert!(!b.is_durable());
    b.set("a", rec("1")).unwrap();
    assert_eq!(
        fs::read(&path).unwrap(),
        b"",
        "nothing written before a flush"
    );
    assert_eq!(
        value(&b, "a").as_deref(),
        Some("1"),
        "but visible to its own handle"
    );
    b.flush().unwrap();
    assert!(fs::read_to_string(&path).unwrap().contains("\"a\""));

    b.set("b", rec("2")).unwrap();
    let t = std::time::Instant::now();
    drop(b); // the one-hour tick does not delay the drop
    assert!(t.elapsed() < Duration::from_secs(30));
    assert!(fs::read_to_string(&path).unwrap().contains("\"b\""));

    let ticking = batched(&path, Duration::from_millis(5));
    ticking.set("c", rec("3")).unwrap();
    let t = std::time::Instant::now();
    while !fs::read_to_string(&path).unwrap().contains("\"c\"") {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the flush thread never wrote"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn assert_corrupt(path: &Path, text: &[u8], want: &str) {
    fs::write(path, text).unwrap();
    let Err(err) = FileBackend::open(path) else {
        panic!("{} opened", String::from_utf8_lossy(text));
    };
    let Error::Corrupt {
        path: Some(p),
        position: Some(pos),
        detail,
        ..
    } = &err
    else {
        panic!(
            "{}: expected Corrupt with a path and position, got {err:?}",
            String::from_utf8_lossy(text)
        );
    };
    assert_eq!(p, path);
    assert!(pos.starts_with("line "), "{pos}");
    assert!(detail.contains(want), "{detail:?} should mention {want:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains(" at line "),
        "{msg}"
    );
    assert_eq!(fs::read(path).unwrap(), text, "the file was changed");
}

#[test]
fn damaged_files_are_corrupt_errors_and_stay_untouched() {
    let (_dir, path) = setup();
    assert_corrupt(&path, b"<html>not json", "expected value");
    assert_corrupt(&path, b"{\"a\": {\"value\": 1, \"expire_at\": nu", "");
    assert_corrupt(
        &path,
        b"[{\"value\": 1, \"expire_at\": null}]",
        "JSON object",
    );
    assert_corrupt(&path, b"null", "JSON object");
    assert_corrupt(
        &path,
        b"{\"a\": {\"value\": 1}}",
        "missing field `expire_at`",
    );
    assert_corrupt(
        &path,
        b"{\"a\": {\"expire_at\": 5}}",
        "missing field `value`",
    );
    assert_corrupt(&path, b"{\"a\": [1, null]}", "invalid type");
    assert_corrupt(
        &path,
        b"{\"a\": {\"value\": 1, \"value\": 2, \"expire_at\": null}}",
        "duplicate field",
    );
    assert_corrupt(
        &path,
        b"{\"a\": {\"value\": 1, \"expire_at\": \"x\"}}",
        "expire_at",
    );
    assert_corrupt(
        &path,
        b"{\"a\": {\"value\": 1, \"expire_at\": {}}}",
        "expire_at",
    );
    assert_corrupt(
        &path,
        b"{\"a\": {\"value\": {\"$bytes\": 1}, \"expire_at\": null}}",
        "$bytes",
    );
    assert_corrupt(&path, b"\xef\xbb\xbf{}", "expected value");
    assert_corrupt(
        &path,
        b"{\"\xff\": {\"value\": 1, \"expire_at\": null}}",
        "",
    );
    assert_corrupt(&path, b"  \n", "EOF");
    let multi = b"{\n  \"a\": {\"value\": 1, \"expire_at\": null},\n  \"b\": {\"value\": 2}\n}\n";
    fs::write(&path, multi).unwrap();
    let Error::Corrupt { position, .. } = FileBackend::open(&path).unwrap_err() else {
        panic!("not corrupt");
    };
    assert!(position.unwrap().starts_with("line 3,"));
}

#[test]
fn damage_found_after_open_refuses_writes_and_keeps_the_file() {
    let (_dir, path) = setup();
    let b = FileBackend::open(&path).unwrap();
    let lazy = batched(&path, Duration::from_secs(3600));
    b.set("k", rec("1")).unwrap();
    lazy.set("l", rec("2")).unwrap();
    let garbage = b"{\"k\": oops";
    // Another program replaces the file with garbage.
    fs::write(path.with_extension("garbage"), garbage).unwrap();
    fs::rename(path.with_extension("garbage"), &path).unwrap();
    assert!(b.get("k").unwrap_err().is_corrupt());
    assert!(b.set("k", rec("2")).unwrap_err().is_corrupt());
    assert!(b.delete("k").unwrap_err().is_corrupt());
    assert!(b.clear().unwrap_err().is_corrupt());
    assert!(lazy.flush().unwrap_err().is_corrupt());
    assert_eq!(fs::read(&path).unwrap(), garbage);
    drop(lazy); // its flush on drop fails too, and leaves the file alone
    assert_eq!(fs::read(&path).unwrap(), garbage);
    // Repaired: the handle recovers.
    fs::write(&path, b"{}").unwrap();
    assert_eq!(b.get("k").unwrap(), None);
    b.set("k", rec("3")).unwrap();
    assert_eq!(value(&b, "k").as_deref(), Some("3"));
}

fn io_kind(err: &Error) -> io::ErrorKind {
    err.io_error()
        .unwrap_or_else(|| panic!("expected an I/O error, got {err:?}"))
        .kind()
}

#[test]
fn unusable_paths_are_typed_io_errors() {
    let (dir, _) = setup();

    // A regular file used as a folder: denied whoever we run as (root ignores chmod). The error
    // names the cache file given (not its lock file), and its cause names the folder.
    let file = dir.path().join("plain-file");
    fs::write(&file, b"x").unwrap();
    let cache_path = file.join("sub").join("cache.json");
    let err = FileBackend::open(&cache_path).unwrap_err();
    assert_eq!(io_kind(&err), io::ErrorKind::NotADirectory, "{err}");
    assert_eq!(err.operation(), Some(braincache_core::Operation::Open));
    assert_eq!(err.path(), Some(cache_path.as_path()));
    let cause = std::error::Error::source(&err)
        .expect("a cause")
        .to_string();
    assert_eq!(
        cause,
        format!("cannot create its folder {}", file.join("sub").display())
    );

    let folder = dir.path().join("a-folder");
    fs::create_dir(&folder).unwrap();
    let err = FileBackend::open(&folder).unwrap_err();
    assert!(err.is_io(), "{err:?}");
    let err = FileBackend::open("/").unwrap_err();
    assert!(err.is_io(), "{err:?}");
}

/// Issue 13, item 5: a cache in a folder that does not exist yet (a CLI's `~/.cache/app/` on
/// its first run) opens, creating the missing folders, in durable and batched mode.
#[test]
fn r13_missing_parent_folders_are_created() {
    let (dir, _) = setup();
    let path = dir.path().join("a").join("b").join("c").join("cache.json");
    let b = FileBackend::open(&path).unwrap();
    assert!(path.is_file() && path.with_file_name("cache.json.lock").is_file());
    b.set("k", rec("1")).unwrap();
    drop(b);
    assert_eq!(
        value(&FileBackend::open(&path).unwrap(), "k").as_deref(),
        Some("1")
    );

    let batched = dir.path().join("x").join("y").join("cache.json");
    let b = FileBackend::builder(&batched)
        .flush_every(std::time::Duration::from_secs(60))
        .build()
        .unwrap();
    b.set("k", rec("2")).unwrap();
    drop(b);
    assert_eq!(
        value(&FileBackend::open(&batched).unwrap(), "k").as_deref(),
        Some("2")
    );
}

#[test]
fn a_failed_durable_write_leaves_the_cache_as_it_was() {
    let (_dir, path) = setup();
    let b = FileBackend::open(&path).unwrap();
    b.set("k", rec("1")).unwrap();
    let before = fs::read(&path).unwrap();
    // A folder where the temp file goes makes every write fail.
    let tmp = path.with_file_name("cache.json.tmp");
    fs::create_dir(&tmp).unwrap();
    let err = b.set("k", rec("2")).unwrap_err();
    assert!(err.is_io(), "{err:?}");
    assert_eq!(err.key(), Some("k"));
    assert_eq!(err.operation(), Some(braincache_core::Operation::Set));
    assert!(b.delete("k").unwrap_err().is_io());
    assert_eq!(
        value(&b, "k").as_deref(),
        Some("1"),
        "the refused writes did not stick"
    );
    assert_eq!(b.len().unwrap(), 1);
    assert_eq!(fs::read(&path).unwrap(), before);
    fs::remove_dir(&tmp).unwrap();
    b.set("k", rec("3")).unwrap();
    assert_eq!(
        value(&FileBackend::open(&path).unwrap(), "k").as_deref(),
        Some("3")
    );
}

#[test]
fn a_failed_batched_flush_keeps_the_changes_for_the_next_one() {
    let (_dir, path) = setup();
    let b = batched(&path, Duration::from_secs(3600));
    b.set("a", rec("1")).unwrap();
    let tmp = path.with_file_name("cache.json.tmp");
    fs::create_dir(&tmp).unwrap();
    assert!(b.flush().unwrap_err().is_io());
    b.set("b", rec("2")).unwrap();
    assert_eq!(b.len().unwrap(), 2);
    fs::remove_dir(&tmp).unwrap();
    b.flush().unwrap();
    let fresh = FileBackend::open(&path).unwrap();
    assert_eq!(fresh.len().unwrap(), 2);
}

#[test]
fn leftovers_and_outside_changes_are_handled() {
    let (_dir, path) = setup();
    let b = FileBackend::open(&path).unwrap();
    // A temp file left by a writer killed mid-write is overwritten, never read.
    fs::write(path.with_file_name("cache.json.tmp"), b"{torn").unwrap();
    b.set("k", rec("1")).unwrap();
    assert!(!path.with_file_name("cache.json.tmp").exists());
    // The file deleted behind our back reads as empty and comes back on the next write.
    fs::remove_file(&path).unwrap();
    assert_eq!(b.len().unwrap(), 0);
    b.set("j", rec("2")).unwrap();
    assert_eq!(FileBackend::open(&path).unwrap().len().unwrap(), 1);
    // An edit in place by another program (same inode) is noticed.
    fs::write(&path, br#"{"edited": {"value": true, "expire_at": null}}"#).unwrap();
    assert_eq!(value(&b, "edited").as_deref(), Some("true"));
}

#[cfg(unix)]
#[test]
fn permissions_and_symlinks_are_kept() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, path) = setup();
    fs::write(&path, b"{}").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let b = FileBackend::open(&link).unwrap();
    assert_eq!(b.path(), path.canonicalize().unwrap());
    b.set("k", rec("1")).unwrap();
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(fs::read_to_string(&link).unwrap().contains("\"k\""));
}

/// A full disk, on a 64 KiB tmpfs. Needs the right to mount (root, as in CI); skipped otherwise.
#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_is_an_io_error_and_the_file_survives() {
    struct Mount(PathBuf);
    impl Drop for Mount {
        fn drop(&mut self) {
            // A replaced version still being closed keeps the mount busy for a moment: retry,
            // then detach it, so no test leaves a mount behind.
            let unmounted = (0..50).any(|_| {
                let ok = std::process::Command::new("umount")
                    .arg(&self.0)
                    .stderr(std::process::Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if !ok {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                ok
            });
            if !unmounted {
                let _ = std::process::Command::new("umount")
                    .arg("-l")
                    .arg(&self.0)
                    .status();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(dir.path())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    }
    let _mount = Mount(dir.path().to_path_buf());
    let path = dir.path().join("cache.json");
    let b = FileBackend::open(&path).unwrap();
    b.set("small", rec("1")).unwrap();
    let before = fs::read(&path).unwrap();
    let big = format!("\"{}\"", "x".repeat(100_000));
    let err = b.set("big", rec(&big)).unwrap_err();
    assert_eq!(io_kind(&err), io::ErrorKind::StorageFull, "{err}");
    assert_eq!(fs::read(&path).unwrap(), before);
    assert_eq!(b.get("big").unwrap(), None);
    assert_eq!(value(&b, "small").as_deref(), Some("1"));
    assert!(
        !path.with_file_name("cache.json.tmp").exists(),
        "the temp file is cleaned up"
    );
    b.set("small2", rec("2")).unwrap();
}

#[test]
fn the_file_shows_real_json_and_reads_back_after_reopening() {
    let (_dir, path) = setup();
    let deadline = Timestamp::from_unix_nanos(1_767_225_600_123_456_789);
    {
        let b = FileBackend::open(&path).unwrap();
        b.set(
            "obj",
            Record::new(br#"{"a":[1,2.5,null]}"#.to_vec(), Some(deadline)),
        )
        .unwrap();
        b.set("bin", Record::new(vec![0, 1, 2, 255], None)).unwrap();
        b.set("tag", rec(r#"{"$bytes":"AA=="}"#)).unwrap();
    }
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        "{\n  \"bin\": {\"value\": {\"$bytes\": \"AAEC/w==\"}, \"expire_at\": null},\n  \
         \"obj\": {\"value\": {\"a\":[1,2.5,null]}, \"expire_at\": 1767225600.123456789},\n  \
         \"tag\": {\"value\": {\"$json\": {\"$bytes\":\"AA==\"}}, \"expire_at\": null}\n}\n"
    );
    let b = FileBackend::open(&path).unwrap();
    assert_eq!(
        b.get("obj").unwrap(),
        Some(Record::new(
            br#"{"a":[1,2.5,null]}"#.to_vec(),
            Some(deadline)
        ))
    );
    assert_eq!(b.get("bin").unwrap().unwrap().value, [0, 1, 2, 255]);
    assert_eq!(value(&b, "tag").as_deref(), Some(r#"{"$bytes":"AA=="}"#));
    assert_eq!(b.next_expiry().unwrap(), Some(deadline));
}

/// Review finding: a batched handle's `clear`/`delete` used to wait in memory and be replayed
/// at the flush over the current file, erasing what another process wrote in between.
#[test]
fn a_batched_removal_never_erases_a_later_write_of_another_process() {
    let (_dir, path) = setup();
    let lazy = batched(&path, Duration::from_secs(3600));
    let other = FileBackend::open(&path).unwrap();
    other.set("x", rec("0")).unwrap();

    lazy.set("mine", rec("1")).unwrap();
    lazy.clear().unwrap();
    other.set("x", rec("1")).unwrap(); // acknowledged after the clear
    lazy.flush().unwrap();
    assert_eq!(value(&other, "x").as_deref(), Some("1"), "clear");
    assert_eq!(other.get("mine").unwrap(), None, "set before the clear");

    assert!(lazy.delete("x").unwrap());
    other.set("x", rec("2")).unwrap();
    lazy.flush().unwrap();
    assert_eq!(value(&other, "x").as_deref(), Some("2"), "delete");

    assert_eq!(lazy.delete_many(&["x", "x", "none"]).unwrap(), 1);
    other.set("x", rec("3")).unwrap();
    lazy.flush().unwrap();
    assert_eq!(value(&other, "x").as_deref(), Some("3"), "delete_many");

    assert!(lazy.delete("x").unwrap());
    other.set("x", rec("4")).unwrap();
    drop(lazy); // the flush on drop
    assert_eq!(value(&other, "x").as_deref(), Some("4"), "drop");
}

#[test]
fn a_batched_purge_never_erases_a_later_write_of_another_process() {
    let (_dir, path) = setup();
    let lazy = batched(&path, Duration::from_secs(3600));
    let other = FileBackend::open(&path).unwrap();
    let t = |s: u64| Some(Timestamp::from_unix_millis(s * 1000));
    other.set("old", Record::new(b"1".to_vec(), t(10))).unwrap();
    let now = Timestamp::from_unix_millis(20_000);
    assert_eq!(lazy.purge_expired(now).unwrap(), 1);
    // Written after the purge, with a deadline the purge's time has passed: the purge does not
    // reach it (it is still expired to every reader, and the next purge removes it).
    other
        .set("late", Record::new(b"2".to_vec(), t(15)))
        .unwrap();
    lazy.flush().unwrap();
    assert_eq!(other.get("old").unwrap(), None);
    assert_eq!(value(&other, "late").as_deref(), Some("2"));
    assert_eq!(lazy.purge_expired(now).unwrap(), 1);
    assert_eq!(other.get("late").unwrap(), None);
}

/// In batched mode only sets wait for the flush: a removal is on disk when it returns, with the
/// sets made before it, in order.
#[test]
fn batched_removals_write_through_with_the_sets_before_them() {
    let (_dir, path) = setup();
    let lazy = batched(&path, Duration::from_secs(3600));
    let on_disk = || FileBackend::read_entries(&path).unwrap();
    lazy.set("a", rec("1")).unwrap();
    lazy.set("b", rec("2")).unwrap();
    assert!(on_disk().is_empty(), "sets wait for the flush");
    assert!(lazy.delete("a").unwrap());
    assert_eq!(on_disk(), [("b".to_owned(), rec("2"))]);
    // A removal that removes nothing writes nothing; the set stays pending.
    lazy.set("c", rec("3")).unwrap();
    assert!(!lazy.delete("a").unwrap());
    assert_eq!(lazy.delete_many(&["a", "z"]).unwrap(), 0);
    assert_eq!(lazy.purge_expired(Timestamp::MAX).unwrap(), 0);
    assert_eq!(on_disk().len(), 1);
    lazy.clear().unwrap();
    assert!(on_disk().is_empty());
    assert_eq!(lazy.len().unwrap(), 0);
    lazy.set("d", rec("4")).unwrap();
    assert_eq!(
        lazy.purge_expired(Timestamp::MAX).unwrap(),
        0,
        "no deadline"
    );
    lazy.set(
        "e",
        Record::new(b"5".to_vec(), Some(Timestamp::from_unix_millis(1))),
    )
    .unwrap();
    assert_eq!(lazy.purge_expired(Timestamp::MAX).unwrap(), 1);
    assert_eq!(on_disk(), [("d".to_owned(), rec("4"))]);
}

/// The documented rule for batched sets: a set reaches the file at the flush, so for the same
/// key it wins over what another process wrote between the set and the flush (the later flush
/// wins); keys this handle did not set are left alone.
#[test]
fn a_batched_set_wins_over_writes_to_the_same_key_made_before_its_flush() {
    let (_dir, path) = setup();
    let lazy = batched(&path, Duration::from_secs(3600));
    let other = FileBackend::open(&path).unwrap();
    lazy.set("k", rec("mine")).unwrap();
    other.set("k", rec("theirs")).unwrap();
    other.set("j", rec("theirs")).unwrap();
    lazy.flush().unwrap();
    assert_eq!(value(&other, "k").as_deref(), Some("mine"));
    assert_eq!(value(&other, "j").as_deref(), Some("theirs"));
    lazy.set("k", rec("again")).unwrap();
    assert!(other.delete("k").unwrap());
    lazy.flush().unwrap();
    assert_eq!(value(&other, "k").as_deref(), Some("again"));
    // Once flushed, a set is not written again: later writes of others stand.
    other.set("k", rec("last")).unwrap();
    lazy.flush().unwrap();
    assert_eq!(value(&lazy, "k").as_deref(), Some("last"));
}

/// Review finding: a durable write used to change the handle's memory before the file was
/// replaced, so its other threads could read a value that the write then failed to store.
/// `<file>.tmp` is made a FIFO: the writer blocks opening it (holding the file lock) until the
/// test opens the other end, and then fails at the fsync (a FIFO cannot be fsynced).
#[cfg(unix)]
#[test]
fn readers_never_see_a_write_that_then_fails() {
    use std::io::Read;
    use std::time::Instant;

    /// Runs `write` on another thread while it is stuck on the FIFO, reading `key` through
    /// `reader` meanwhile; returns the write's result and every distinct value read.
    fn while_stuck(
        path: &Path,
        reader: &FileBackend,
        key: &str,
        write: impl FnOnce() -> braincache_core::Result<()> + Send,
    ) -> (braincache_core::Result<()>, Vec<Option<String>>) {
        let tmp = path.with_file_name("cache.json.tmp");
        let lock = fs::File::open(path.with_file_name("cache.json.lock")).unwrap();
        let made = std::process::Command::new("mkfifo").arg(&tmp).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo failed");
        let mut seen: Vec<Option<String>> = Vec::new();
        let result = std::thread::scope(|s| {
            let writer = s.spawn(write);
            // The writer holds the file lock from before it changes anything until it is done.
            let t = Instant::now();
            while lock.try_lock().is_ok() {
                lock.unlock().unwrap();
                assert!(
                    t.elapsed() < Duration::from_secs(10),
                    "the writer never locked"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            let t = Instant::now();
            for _ in 0..100_000 {
                // No panic here: the writer must be let go first.
                let v = match reader.get(key) {
                    Ok(r) => r.map(|r| String::from_utf8_lossy(&r.value).into_owned()),
                    Err(e) => Some(format!("error: {e}")),
                };
                if !seen.contains(&v) {
                    seen.push(v);
                }
                if t.elapsed() > Duration::from_millis(200) {
                    break;
                }
            }
            // Let the writer go (it then fails at the fsync), whatever was seen.
            let mut fifo = fs::File::open(&tmp).unwrap();
            let mut written = Vec::new();
            fifo.read_to_end(&mut written).unwrap();
            writer.join().unwrap()
        });
        assert!(!tmp.exists(), "the failed write removes its temp file");
        (result, seen)
    }

    let (_dir, path) = setup();
    let durable = FileBackend::open(&path).unwrap();
    durable.set("k", rec("1")).unwrap();
    let before = fs::read(&path).unwrap();
    let (result, seen) = while_stuck(&path, &durable, "k", || durable.set("k", rec("2")));
    assert!(result.unwrap_err().is_io());
    assert_eq!(
        seen,
        [Some("1".to_owned())],
        "a reader saw the unwritten value"
    );
    assert_eq!(value(&durable, "k").as_deref(), Some("1"));
    assert_eq!(fs::read(&path).unwrap(), before);

    // The same for a batched handle's removal, which writes through.
    let lazy = batched(&path, Duration::from_secs(3600));
    lazy.set("p", rec("pending")).unwrap();
    let (result, seen) = while_stuck(&path, &lazy, "k", || lazy.clear());
    assert!(result.unwrap_err().is_io());
    assert_eq!(
        seen,
        [Some("1".to_owned())],
        "a reader saw the unwritten clear"
    );
    assert_eq!(value(&lazy, "k").as_deref(), Some("1"));
    assert_eq!(value(&lazy, "p").as_deref(), Some("pending"));
    assert_eq!(fs::read(&path).unwrap(), before);
    lazy.flush().unwrap();
    assert_eq!(value(&durable, "p").as_deref(), Some("pending"));
    assert_eq!(value(&durable, "k").as_deref(), Some("1"));
}

/// Sets of one thread land while another thread's removals are being written: afterwards the
/// handle answers exactly what the file holds. (Each set is of a new key, so a set dropped from
/// the handle's memory is not hidden by a later one.)
#[test]
fn batched_sets_during_a_removals_write_stay_in_step_with_the_file() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
    const MAX_SETS: usize = 5_000;
    let (_dir, path) = setup();
    let lazy = batched(&path, Duration::from_secs(3600));
    let (done, sets) = (AtomicBool::new(false), AtomicUsize::new(0));
    let mut after_last_clear = 0;
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..MAX_SETS {
                if done.load(Relaxed) {
                    break;
                }
                lazy.set(&format!("s{i}"), rec("1")).unwrap();
                sets.store(i + 1, Relaxed);
                std::thread::sleep(Duration::from_micros(50));
            }
        });
        let t = std::time::Instant::now();
        while sets.load(Relaxed) == 0 {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the setter never ran"
            );
            std::thread::yield_now();
        }
        for round in 0..60 {
            // Each removal removes something, so each one writes.
            lazy.set("m", rec("1")).unwrap();
            match round % 3 {
                0 => {
                    lazy.clear().unwrap();
                    after_last_clear = sets.load(Relaxed);
                }
                1 => assert!(lazy.delete("m").unwrap()),
                _ => assert!(lazy.delete_many(&["m", "s0"]).unwrap() >= 1),
            }
        }
        done.store(true, Relaxed);
    });
    let n = sets.load(Relaxed);
    assert!(n > 60, "only {n} sets");
    lazy.flush().unwrap();
    let fresh = FileBackend::open(&path).unwrap();
    let keys: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    assert_eq!(lazy.len().unwrap(), fresh.len().unwrap());
    let in_file = fresh.get_many(&keys).unwrap();
    assert_eq!(lazy.get_many(&keys).unwrap(), in_file);
    // Sets that began after the last clear returned are all kept (s0 is deleted).
    let lost: Vec<usize> = (after_last_clear + 1..n)
        .filter(|&i| i > 0 && in_file[i].is_none())
        .collect();
    assert!(lost.is_empty(), "acknowledged sets lost: {lost:?}");
}

/// `flush()` returns once every earlier set is on disk, even when the flush thread has taken
/// them and is still writing. (It used to return at once, seeing nothing pending.) The flush
/// thread is held on a FIFO at `<file>.tmp`, then fails there (a FIFO cannot be fsynced), so
/// `flush()` must wait for it and write the sets itself.
#[cfg(unix)]
#[test]
fn flush_waits_for_the_flush_threads_write_under_way() {
    use std::io::Read;
    use std::time::Instant;
    let (_dir, path) = setup();
    let tmp = path.with_file_name("cache.json.tmp");
    let lazy = batched(&path, Duration::from_millis(1));
    let lock = fs::File::open(path.with_file_name("cache.json.lock")).unwrap();
    let made = std::process::Command::new("mkfifo").arg(&tmp).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo failed");
    lazy.set("k", rec("1")).unwrap();
    // The flush thread takes the set and holds the file lock, stuck opening the FIFO.
    let t = Instant::now();
    while lock.try_lock().is_ok() {
        lock.unlock().unwrap();
        assert!(t.elapsed() < Duration::from_secs(10), "no flush began");
        std::thread::sleep(Duration::from_millis(1));
    }
    let (flushed, on_disk) = std::thread::scope(|s| {
        let flusher = s.spawn(|| {
            let flushed = lazy.flush();
            (flushed, FileBackend::read_entries(&path))
        });
        std::thread::sleep(Duration::from_millis(100));
        let mut fifo = fs::File::open(&tmp).unwrap();
        let mut written = Vec::new();
        fifo.read_to_end(&mut written).unwrap();
        flusher.join().unwrap()
    });
    flushed.unwrap();
    assert_eq!(on_disk.unwrap(), [("k".to_owned(), rec("1"))]);
}

/// How many of this process's descriptors are open on `path` (Linux: `/proc/self/fd`).
#[cfg(target_os = "linux")]
fn open_descriptors_on(path: &Path) -> usize {
    let want = fs::canonicalize(path).unwrap();
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter(|target| *target == want)
        .count()
}

/// Replaced versions are closed on a background thread, but the version a backend holds when
/// it is dropped is closed by the time `drop` returns (on Windows an open file blocks deleting
/// its folder; on Unix it keeps a file system busy).
#[cfg(target_os = "linux")]
#[test]
fn dropping_a_backend_closes_its_file() {
    let (_dir, path) = setup();
    for round in 0..20 {
        let b = FileBackend::open(&path).unwrap();
        b.set("a", rec(&format!("{round}"))).unwrap();
        b.set("b", rec("2")).unwrap();
        assert_eq!(value(&b, "a").as_deref(), Some(format!("{round}").as_str()));
        drop(b);
        assert_eq!(open_descriptors_on(&path), 0, "round {round}");
    }
}

/// A zero flush interval is clamped to 1 ms, like every zero limit of the builders; durable
/// mode is asked for with `durable()` alone.
#[test]
fn zero_flush_interval_is_clamped_and_durable_is_one_call() {
    let dir = tempfile::tempdir().unwrap();
    let b = FileBackend::builder(dir.path().join("z.json"))
        .flush_every(Duration::ZERO)
        .build()
        .unwrap();
    assert_eq!(b.flush_every(), Some(Duration::from_millis(1)));
    assert!(!b.is_durable());
    drop(b);
    let b = FileBackend::builder(dir.path().join("z.json"))
        .flush_every(Duration::from_secs(5))
        .durable()
        .build()
        .unwrap();
    assert!(b.is_durable());
    assert_eq!(b.flush_every(), None);
}
