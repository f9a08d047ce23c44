//! The serde data model through every backend: one table of values of many types, written
//! through one handle and read back through another (a fresh one for the durable backends);
//! reads as another type, and reads with another codec, are errors rather than other values.
//!
//! The Redis cases need `--features redis` and a `redis-server` (skipped without one unless
//! `BRAINCACHE_REQUIRE_REDIS=1`).

use braincache::BrainCache;
use braincache::backend::{Backend, FileBackend, MemoryBackend, Record, RedbBackend};
use braincache::base::{Codec, CodecId, MsgPack, Postcard};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;

/// An `f64` compared by bits, so NaN equals itself.
#[derive(Serialize, Deserialize, Debug, Clone, Copy)]
#[serde(transparent)]
struct Float(f64);

impl PartialEq for Float {
    fn eq(&self, other: &Float) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
#[serde(untagged)]
enum Untagged {
    Number(u32),
    Text(String),
    Pair { a: Option<Option<u8>>, b: Vec<i8> },
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
#[serde(tag = "type")]
enum Internal {
    Circle { r: Float },
    Named { name: String, extra: Option<u8> },
    Empty,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
#[serde(tag = "t", content = "c")]
enum Adjacent {
    Num(i64),
    Opt(Option<Option<String>>),
    Unit,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
enum External {
    Unit,
    Newtype(u8),
    Tuple(u8, String),
    Struct { x: i16 },
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Flattened {
    id: u64,
    #[serde(flatten)]
    rest: BTreeMap<String, serde_json::Value>,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Unit;

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Newtype(Option<u8>);

#[derive(Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Debug, Clone)]
struct User {
    id: u32,
    name: String,
}

/// Sets `value` under `key` through `writer`; returns a check that reads it back through the
/// reader it is given.
fn put<B: Backend, C: Codec, T>(
    writer: &BrainCache<B, C>,
    key: &'static str,
    value: T,
) -> impl FnOnce(&BrainCache<B, C>) + use<B, C, T>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug + 'static,
{
    writer
        .set(key, &value, None)
        .unwrap_or_else(|e| panic!("{} set {key}: {e}", C::NAME));
    move |reader: &BrainCache<B, C>| {
        let back = reader
            .get::<T>(key)
            .unwrap_or_else(|e| panic!("{} get {key} ({value:?}): {e}", C::NAME));
        assert_eq!(back.as_ref(), Some(&value), "{} {key}", C::NAME);
    }
}

/// Writes the table through `writer`, then reads it all back through `reader()`.
macro_rules! table {
    ($writer:expr, $reader:expr; $($key:literal => $value:expr),* $(,)?) => {{
        let writer = $writer;
        let checks: Vec<Box<dyn FnOnce(&_)>> = vec![$(Box::new(put(writer, $key, $value))),*];
        let reader = $reader;
        for check in checks {
            check(&reader);
        }
    }};
}

/// The values JSON can hold (the file backend's own codec): every kind of enum, flatten,
/// `serde_json::Value`, 128-bit integers, and Python's non-finite floats.
fn json_table<B: Backend, C: Codec>(
    writer: &BrainCache<B, C>,
    reader: impl FnOnce() -> BrainCache<B, C>,
) {
    table!(writer, reader();
        "value" => serde_json::json!({"a": [1, -2, 2.5, null, true, "s", {"b": []}], "big": u64::MAX}),
        "untagged-number" => Untagged::Number(7),
        "untagged-text" => Untagged::Text("seven".into()),
        "untagged-struct" => Untagged::Pair { a: Some(Some(1)), b: vec![-1] },
        "internal" => Internal::Named { name: "n".into(), extra: None },
        "internal-float" => Internal::Circle { r: Float(1.5) },
        "internal-unit" => Internal::Empty,
        "adjacent" => Adjacent::Num(-5),
        "adjacent-unit" => Adjacent::Unit,
        "external" => vec![External::Unit, External::Newtype(1), External::Tuple(2, "t".into()), External::Struct { x: -3 }],
        "flatten" => Flattened { id: 9, rest: BTreeMap::from([("k".into(), serde_json::json!([1, "two"]))]) },
        "int-keys" => BTreeMap::from([(1u32, "one".to_string()), (u32::MAX, "max".into())]),
        "u128" => u128::MAX,
        "i128" => i128::MIN,
        "nan" => Float(f64::NAN),
        "infinities" => vec![Float(f64::INFINITY), Float(f64::NEG_INFINITY), Float(-0.0)],
        "nested-nan" => BTreeMap::from([("x".to_string(), vec![Float(f64::NAN)])]),
        "option-none" => None::<Option<u8>>,
        "option-some" => Some(Some(3u8)),
        "unit" => (),
        "unit-struct" => Unit,
        "char" => 'é',
        "string" => "a \"quoted\" ☕ string".to_string(),
        "bytes" => vec![0u8, 1, 255],
        "tuple" => (1u8, -2i64, "three".to_string(), true),
        "user" => User { id: 1, name: "Ada".into() },
    );
}

/// The whole data model: the JSON table, plus what only a binary self-describing codec holds.
fn full_table<B: Backend, C: Codec>(
    writer: &BrainCache<B, C>,
    reader: impl Fn() -> BrainCache<B, C>,
) {
    json_table(writer, &reader);
    table!(writer, reader();
        "some-none" => Some(None::<u8>),
        "some-some-none" => Some(Some(None::<u8>)),
        "options" => vec![None, Some(None), Some(Some("s".to_string()))],
        "untagged-some-none" => Untagged::Pair { a: Some(None), b: vec![] },
        "adjacent-some-none" => Adjacent::Opt(Some(None)),
        "newtype-some-none" => Some(Newtype(None)),
        "tuple-keys" => HashMap::from([((1u8, -2i64), "pair".to_string())]),
        "struct-keys" => BTreeMap::from([(User { id: 1, name: "k".into() }, 1u8)]),
        "option-keys" => BTreeMap::from([(None, 0u8), (Some(None::<u8>), 1), (Some(Some(2)), 2)]),
    );
}

/// The user every test stores under `"user"`.
fn user_a() -> User {
    User {
        id: 1,
        name: "a".into(),
    }
}

/// Reads as another type are errors, never another value.
fn wrong_types<B: Backend, C: Codec>(cache: &BrainCache<B, C>) {
    cache.set("string", "text", None).unwrap();
    let e = cache.get::<Vec<u8>>("string").unwrap_err();
    assert!(e.is_decode(), "{e}");
    cache.set("user", &user_a(), None).unwrap();
    let e = cache.get::<(u32, String)>("user").unwrap_err();
    assert!(e.is_decode(), "{e}");
    cache.set("u32", &1234u32, None).unwrap();
    // The same number, or an error: never 617 (postcard's reading of these bytes).
    assert_eq!(cache.get::<i32>("u32").unwrap(), Some(1234));
    assert!(cache.get::<u8>("u32").unwrap_err().is_decode());
    assert!(cache.get::<String>("u32").unwrap_err().is_decode());
    cache.set("neg", &-1i64, None).unwrap();
    assert!(cache.get::<u64>("neg").unwrap_err().is_decode());
    cache.set("float", &1.5f64, None).unwrap();
    assert!(cache.get::<u32>("float").unwrap_err().is_decode());
}

/// A record written with another codec is a typed error naming both codecs and the key.
fn wrong_codec<B: Backend, C: Codec, D: Codec>(
    written: &BrainCache<B, D>,
    read: &BrainCache<B, C>,
) {
    written.set("other-codec", &7u8, None).unwrap();
    let e = read.get::<u8>("other-codec").unwrap_err();
    assert!(e.is_codec_mismatch(), "{e}");
    assert!(e.is_decode(), "{e}");
    assert_eq!(e.key(), Some("other-codec"));
    let text = chain(&e);
    assert!(text.contains(D::NAME) && text.contains(C::NAME), "{text}");
    // The reverse too, and the entry is left as it was.
    read.set("mine", &8u8, None).unwrap();
    assert!(written.get::<u8>("mine").unwrap_err().is_codec_mismatch());
    assert_eq!(read.get::<u8>("mine").unwrap(), Some(8));
    assert_eq!(written.get::<u8>("other-codec").unwrap(), Some(7));
}

/// `name` in a fresh temporary folder, removed when the `TempDir` drops.
fn temp_path(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    (dir, path)
}

/// A durable backend: `table` written through one handle and read back through fresh ones
/// (`open` opens the store again), reads as another type refused, and a handle with the `other`
/// codec refused both ways.
fn across_handles<B: Backend, D: Codec>(
    open: impl Fn() -> B,
    table: impl FnOnce(&BrainCache<B>, &dyn Fn() -> BrainCache<B>),
    other: D,
) {
    let cache = BrainCache::new(open());
    table(&cache, &|| BrainCache::new(open()));
    wrong_types(&cache);
    let other = BrainCache::builder(open()).codec(other).build();
    wrong_codec(&other, &cache);
}

#[test]
fn memory_holds_the_whole_data_model() {
    let cache = BrainCache::new(MemoryBackend::new());
    full_table(&cache, || cache.clone());
    wrong_types(&cache);
}

#[test]
fn memory_refuses_records_of_another_codec() {
    let cache = BrainCache::new(MemoryBackend::new());
    let postcard = 7u8;
    let r = Record::new(Postcard.encode(&postcard).unwrap(), None).with_codec(Some(Postcard::ID));
    cache.backend().set("k", r).unwrap();
    let e = cache.get::<u8>("k").unwrap_err();
    assert!(e.is_codec_mismatch(), "{e}");
    assert_eq!(e.key(), Some("k"));
    assert_eq!(
        cache.backend().get("k").unwrap().unwrap().codec,
        Some(CodecId::POSTCARD)
    );
    // Unstated: the backend's default codec.
    let r = Record::new(MsgPack.encode(&9u8).unwrap(), None);
    cache.backend().set("unstated", r).unwrap();
    assert_eq!(cache.get::<u8>("unstated").unwrap(), Some(9));
}

#[test]
fn redb_holds_the_whole_data_model_across_handles() {
    let (_dir, path) = temp_path("cache.redb");
    let open = || RedbBackend::open(&path).unwrap();
    across_handles(open, |cache, reader| full_table(cache, reader), Postcard);
}

#[test]
fn file_holds_the_json_data_model_with_its_default_codec() {
    let (_dir, path) = temp_path("cache.json");
    let open = || FileBackend::open(&path).unwrap();
    across_handles(open, |cache, reader| json_table(cache, reader), MsgPack);
}

#[test]
fn file_holds_the_whole_data_model_with_msgpack() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.json");
    let open = || {
        BrainCache::builder(FileBackend::open(&path).unwrap())
            .codec(MsgPack)
            .build()
    };
    let cache = open();
    full_table(&cache, open);
    wrong_types(&cache);
    // The document stays JSON, each value tagged with its codec.
    let text = std::fs::read_to_string(&path).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["u128"]["value"]["$codec"], 4, "{text}");
}

#[test]
fn postcard_stays_available_as_an_opt_in_codec() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.redb");
    let cache = BrainCache::builder(RedbBackend::open(&path).unwrap())
        .codec(Postcard)
        .build();
    cache.set("user", &user_a(), None).unwrap();
    assert_eq!(cache.get::<User>("user").unwrap(), Some(user_a()));
    let stored = cache.backend().get("user").unwrap().unwrap();
    assert_eq!(stored.codec, Some(CodecId::POSTCARD));
    assert_eq!(Postcard.decode::<User>(&stored.value).unwrap().id, 1);
}

/// `braincache export` of a redb cache reads back typed through `FileBackend` and its default
/// `Json` codec wherever JSON can hold the value; the rest keep their codec id and are refused
/// as another codec's, never read as another value.
#[test]
fn a_redb_cache_exported_as_json_reads_back_typed_through_the_file_backend() {
    let dir = tempfile::tempdir().unwrap();
    let redb = BrainCache::new(RedbBackend::open(dir.path().join("cache.redb")).unwrap());
    let user = User {
        id: 7,
        name: "Ada".into(),
    };
    redb.set("user", &user, None).unwrap();
    redb.set("value", &serde_json::json!({"a": [1, null, "x"]}), None)
        .unwrap();
    redb.set(
        "internal",
        &Internal::Named {
            name: "n".into(),
            extra: Some(1),
        },
        None,
    )
    .unwrap();
    redb.set("untagged", &Untagged::Text("t".into()), None)
        .unwrap();
    redb.set("floats", &vec![Float(f64::NAN), Float(f64::INFINITY)], None)
        .unwrap();
    redb.set("int-keys", &BTreeMap::from([(3u32, 'c')]), None)
        .unwrap();
    redb.set("some-none", &Some(None::<u8>), None).unwrap();
    redb.set("tuple-keys", &BTreeMap::from([((1u8, 2u8), 3u8)]), None)
        .unwrap();
    let postcard = BrainCache::builder(RedbBackend::open(dir.path().join("cache.redb")).unwrap())
        .codec(Postcard)
        .build();
    postcard.set("postcard", &5u32, None).unwrap();
    drop((redb, postcard));

    // What `braincache export` writes, entry by entry.
    let out = dir.path().join("export.json");
    let file = FileBackend::open(&out).unwrap();
    for (key, record) in RedbBackend::read_entries(dir.path().join("cache.redb")).unwrap() {
        let exported = match braincache_redb::value_as_json(&record) {
            Some(json) => Record::new(json, record.expires_at),
            None => record,
        };
        file.set(&key, exported).unwrap();
    }
    drop(file);

    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.contains(r#""user": {"value": {"id":7,"name":"Ada"}, "expire_at": null}"#),
        "{text}"
    );
    assert!(
        text.contains(r#""floats": {"value": [NaN,Infinity], "expire_at": null}"#),
        "{text}"
    );
    let json = BrainCache::new(FileBackend::open(&out).unwrap());
    assert_eq!(json.get::<User>("user").unwrap(), Some(user));
    assert_eq!(
        json.get::<serde_json::Value>("value").unwrap(),
        Some(serde_json::json!({"a": [1, null, "x"]}))
    );
    assert_eq!(
        json.get::<Internal>("internal").unwrap(),
        Some(Internal::Named {
            name: "n".into(),
            extra: Some(1)
        })
    );
    assert_eq!(
        json.get::<Untagged>("untagged").unwrap(),
        Some(Untagged::Text("t".into()))
    );
    assert_eq!(
        json.get::<Vec<Float>>("floats").unwrap(),
        Some(vec![Float(f64::NAN), Float(f64::INFINITY)])
    );
    assert_eq!(
        json.get::<BTreeMap<u32, char>>("int-keys").unwrap(),
        Some(BTreeMap::from([(3, 'c')]))
    );
    for key in ["some-none", "tuple-keys", "postcard"] {
        let e = json.get::<serde_json::Value>(key).unwrap_err();
        assert!(e.is_codec_mismatch(), "{key}: {e}");
    }
    // Opened with their codec, they read as what was written.
    let msgpack = BrainCache::builder(FileBackend::open(&out).unwrap())
        .codec(MsgPack)
        .build();
    assert_eq!(
        msgpack.get::<Option<Option<u8>>>("some-none").unwrap(),
        Some(Some(None))
    );
}

#[cfg(feature = "redis")]
#[path = "../crates/braincache-redis/tests/support/mod.rs"]
mod support;

#[cfg(feature = "redis")]
#[test]
fn redis_holds_the_whole_data_model_across_connections() {
    use braincache::backend::RedisBackend;
    let Some(server) = support::RedisServer::start_or_skip() else {
        return;
    };
    let open = || {
        RedisBackend::builder(&server.url())
            .key_prefix("codec:")
            .build()
            .unwrap()
    };
    across_handles(open, |cache, reader| full_table(cache, reader), Postcard);
}

/// `e` and its causes, as `anyhow`'s `{:#}` prints them: each level's `Display` says its own
/// part only, so what a message names may sit in a cause.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
