//! Small helpers the tests of several crates share.

use crate::{Backend, Record};

/// `e` and its causes, `{e}: {source}: {source's source}…`, as anyhow's `{:#}` prints an error.
///
/// Each level's `Display` says its own part only (so a message does not repeat its cause), and
/// what a test looks for may sit in a cause: assert on this string.
#[must_use]
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// Checks that each error of `e`'s chain says something its cause does not: a message that
/// contains its source's message would make a chain printer (`anyhow`'s `{:#}`,
/// [`error_chain`]) say it twice.
///
/// # Panics
/// When a message contains its source's (non-empty) message.
pub fn assert_each_cause_once(e: &(dyn std::error::Error + 'static)) {
    let mut above = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let said = c.to_string();
        assert!(
            said.is_empty() || !above.contains(&said),
            "{above:?} repeats its cause {said:?}; chain: {}",
            error_chain(e)
        );
        above = said;
        cause = c.source();
    }
}

/// Checks that a backend answers as a listing of its store says (what a tool's reader, such as
/// `RedbBackend::read_entries`, read from the same file): its `len` is the listing's length, and
/// `get` of each of the first 64 listed keys returns the listed record. A call that fails is not
/// compared (damaged input may fail either side); one that answers is held to its answer.
///
/// # Panics
/// When an answer differs from the listing.
pub fn assert_agrees_with_listing<B: Backend>(b: &B, entries: &[(String, Record)]) {
    if let Ok(n) = b.len() {
        assert_eq!(n, entries.len(), "len and read_entries disagree");
    }
    for (k, r) in entries.iter().take(64) {
        if let Ok(got) = b.get(k) {
            assert_eq!(
                got.as_ref(),
                Some(r),
                "get and read_entries disagree on {k:?}"
            );
        }
    }
}
