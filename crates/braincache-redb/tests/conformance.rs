//! The shared backend conformance suite, in both modes.

/// The default: several processes may share the file (redb `MultiWriter`).
mod multi_process {
    use braincache_redb::RedbBackend;

    braincache_core::conformance_tests!(|| {
        let dir = tempfile::tempdir().unwrap();
        let b = RedbBackend::open(dir.path().join("c.redb")).unwrap();
        assert!(!b.is_single_process());
        (b, dir)
    });
}

/// `single_process()`: redb `ExclusiveWriter`.
mod single_process {
    use braincache_redb::RedbBackend;

    braincache_core::conformance_tests!(|| {
        let dir = tempfile::tempdir().unwrap();
        let b = RedbBackend::builder(dir.path().join("c.redb"))
            .single_process()
            .build()
            .unwrap();
        assert!(b.is_single_process());
        (b, dir)
    });
}

/// No snapshot reuse at all: every read begins its own transaction.
mod fresh_snapshots {
    use braincache_redb::RedbBackend;
    use std::time::Duration;

    braincache_core::conformance_tests!(|| {
        let dir = tempfile::tempdir().unwrap();
        let b = RedbBackend::builder(dir.path().join("c.redb"))
            .snapshot_max_age(Duration::ZERO)
            .group_commit_wait(Duration::ZERO)
            .build()
            .unwrap();
        (b, dir)
    });
}

/// Write-behind: writes return once queued; reads see them through the overlay. A long interval,
/// so that most checks run while the writes are still queued.
mod write_behind {
    use braincache_redb::RedbBackend;
    use std::time::Duration;

    braincache_core::conformance_tests!(|| {
        let dir = tempfile::tempdir().unwrap();
        let b = RedbBackend::builder(dir.path().join("c.redb"))
            .write_behind(Duration::from_secs(60))
            .build()
            .unwrap();
        (b, dir)
    });
}

/// Write-behind with commits as soon as possible: the overlay empties while checks run.
mod write_behind_eager {
    use braincache_redb::RedbBackend;
    use std::time::Duration;

    braincache_core::conformance_tests!(|| {
        let dir = tempfile::tempdir().unwrap();
        let b = RedbBackend::builder(dir.path().join("c.redb"))
            .write_behind(Duration::ZERO)
            .build()
            .unwrap();
        (b, dir)
    });
}
