//! `braincache compact` and the bound lines of `braincache inspect` on a redb file.

use braincache_core::{Backend, Record};
use braincache_redb::RedbBackend;
use std::process::{Command, Output};

fn braincache(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_braincache"))
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn compact_refuses_an_open_file_then_shrinks_it_and_inspect_shows_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.redb");
    let file = path.to_str().unwrap();
    let b = RedbBackend::builder(&path).max_entries(50).build().unwrap();
    for i in 0..400 {
        b.set(&format!("k{i}"), Record::new(vec![1; 4096], None))
            .unwrap();
    }
    let out = braincache(&["compact", file]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use"), "{err}");

    let out = braincache(&["inspect", file]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("bound:") && text.contains("50 entries"),
        "{text}"
    );
    assert!(
        text.contains("evictions:") && text.contains("350"),
        "{text}"
    );
    drop(b);

    let before = std::fs::metadata(&path).unwrap().len();
    let out = braincache(&["compact", file]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::metadata(&path).unwrap().len() < before);
    assert_eq!(RedbBackend::read_entries(&path).unwrap().len(), 50);
}
