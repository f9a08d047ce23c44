//! braincache's MessagePack reader and writer (`MsgPack::decode`, `MsgPack::encode`) against
//! the references they replaced (rmp-serde under the nested-`None` adapter,
//! `testkit::msgpack_reference_decode` and `msgpack_reference_encode`): arbitrary bytes read as
//! each of several types give the same value with both, or an error with both, and what is read
//! is written to the same bytes by both; never a panic.
#![no_main]

use braincache_core::testkit::{msgpack_reference_decode, msgpack_reference_encode};
use braincache_core::{Codec, MsgPack};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;

#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Untagged {
    N(u32),
    S(String),
    P { x: Option<Option<u8>> },
    L(Vec<i64>),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t")]
enum Internal {
    A { a: u8, o: Option<Option<bool>> },
    B,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", content = "c")]
enum Adjacent {
    A(Option<Option<u8>>),
    B { s: String },
}

#[derive(Debug, Serialize, Deserialize)]
enum Plain {
    Unit,
    New(Option<Option<i8>>),
    Tup(u8, Option<Option<u8>>),
    Str { f: Option<Option<Option<u8>>> },
}

#[derive(Debug, Serialize, Deserialize)]
struct Flat {
    id: u32,
    #[serde(flatten)]
    rest: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Unit;

#[derive(Debug, Serialize, Deserialize)]
struct Shape {
    name: String,
    bytes: Vec<u8>,
    big: u128,
    neg: i128,
    score: f64,
    c: char,
    unit: Unit,
    keys: BTreeMap<(u8, i64), String>,
    nested: Option<Option<Vec<Option<u8>>>>,
    plain: Plain,
}

/// Both read `bytes` as a `T` to the same value (compared by encoding, so NaN equals NaN), or
/// both fail.
fn same<T: Serialize + DeserializeOwned + Debug>(bytes: &[u8]) {
    match (MsgPack.decode::<T>(bytes), msgpack_reference_decode::<T>(bytes)) {
        (Ok(a), Ok(b)) => {
            let written = MsgPack.encode(&a).expect("a decoded value encodes");
            assert_eq!(
                written,
                MsgPack.encode(&b).expect("a decoded value encodes"),
                "{}: {a:?} vs {b:?}",
                std::any::type_name::<T>()
            );
            assert_eq!(
                written,
                msgpack_reference_encode(&a).expect("a decoded value encodes"),
                "{a:?}"
            );
        }
        (Err(_), Err(_)) => {}
        (a, b) => panic!(
            "{}: reader {a:?}, reference {b:?}",
            std::any::type_name::<T>()
        ),
    }
}

fuzz_target!(|bytes: &[u8]| {
    same::<serde_json::Value>(bytes);
    same::<Untagged>(bytes);
    same::<Internal>(bytes);
    same::<Adjacent>(bytes);
    same::<Plain>(bytes);
    same::<Flat>(bytes);
    same::<Shape>(bytes);
    same::<Option<Option<Option<String>>>>(bytes);
    same::<Vec<Option<Option<u8>>>>(bytes);
    same::<Vec<u8>>(bytes);
    // Read in bulk by `MsgPack::decode` when whole (as is `Vec<u8>` above).
    same::<String>(bytes);
    same::<(u128, i128, f32)>(bytes);
    same::<BTreeMap<String, Vec<u8>>>(bytes);
    same::<Unit>(bytes);
    same::<()>(bytes);
});
