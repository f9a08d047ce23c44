//! Files written by braincache 0.1 (entries framed by a one-byte tag, values in postcard, no
//! codec id) open and read: their records state the postcard codec. New records beside them
//! carry the codec they were written with.

use braincache_core::{Backend, Codec, CodecId, MsgPack, Postcard, Record, Timestamp};
use braincache_redb::RedbBackend;
use redb::{Database, TableDefinition};

const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("entries");
const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("expiry");

#[test]
fn entries_of_the_previous_release_read_as_postcard() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.redb");
    drop(RedbBackend::open(&path).unwrap());
    let deadline = 1_000_000_000u64;
    {
        // As braincache 0.1 wrote them: tag 0 (forever) or 1 + little-endian deadline, then
        // the postcard bytes.
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut entries = txn.open_table(ENTRIES).unwrap();
            let mut forever = vec![0u8];
            forever.extend_from_slice(&Postcard.encode(&(1234u32, "Ada")).unwrap());
            entries.insert("user", forever.as_slice()).unwrap();
            let mut expiring = vec![1u8];
            expiring.extend_from_slice(&deadline.to_le_bytes());
            expiring.extend_from_slice(&Postcard.encode(&7u64).unwrap());
            entries.insert("old", expiring.as_slice()).unwrap();
            txn.open_table(EXPIRY)
                .unwrap()
                .insert((deadline, "old"), ())
                .unwrap();
        }
        txn.commit().unwrap();
    }

    let backend = RedbBackend::open(&path).unwrap();
    let user = backend.get("user").unwrap().unwrap();
    assert_eq!(user.codec, Some(CodecId::POSTCARD));
    assert_eq!(user.expires_at, None);
    let user: (u32, String) = Postcard.decode(&user.value).unwrap();
    assert_eq!(user, (1234, "Ada".to_owned()));
    let old = backend.get("old").unwrap().unwrap();
    assert_eq!(
        old,
        Record::new(
            Postcard.encode(&7u64).unwrap(),
            Some(Timestamp::from_unix_nanos(deadline))
        )
        .with_codec(Some(CodecId::POSTCARD))
    );

    // A new record beside them keeps its codec; the old expiry row still purges.
    let new = Record::new(MsgPack.encode(&"new").unwrap(), None).with_codec(Some(MsgPack::ID));
    backend.set("new", new.clone()).unwrap();
    assert_eq!(backend.get("new").unwrap(), Some(new.clone()));
    assert_eq!(
        backend.next_expiry().unwrap(),
        Some(Timestamp::from_unix_nanos(deadline))
    );
    assert_eq!(
        backend
            .purge_expired(Timestamp::from_unix_nanos(deadline))
            .unwrap(),
        1
    );
    assert_eq!(backend.len().unwrap(), 2);
    // Overwriting a legacy entry writes the new header.
    let replaced = Record::new(vec![1], None).with_codec(Some(CodecId::JSON));
    backend.set("user", replaced.clone()).unwrap();
    drop(backend);
    let entries = RedbBackend::read_entries(&path).unwrap();
    assert_eq!(
        entries,
        vec![("new".to_owned(), new), ("user".to_owned(), replaced)]
    );
}
