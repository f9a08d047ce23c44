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
