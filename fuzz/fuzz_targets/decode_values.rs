//! Decoding arbitrary bytes as values of several types with every codec (MessagePack, postcard,
//! JSON): never a panic, and
//! whatever decodes re-encodes to something that decodes to the same value.
#![no_main]

use braincache_core::{Codec, Json, MsgPack, Postcard};
use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Shape {
    Unit,
    Tuple(u8, i64),
    Struct {
        name: String,
        tags: Vec<String>,
        score: Option<f32>,
    },
}

fn check<C: Codec, T>(codec: &C, bytes: &[u8])
where
    T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    if let Ok(v) = codec.decode::<T>(bytes) {
        // Floats: NaN != NaN, so compare the re-encoded bytes' decodings by their own encoding.
        let again = codec.encode(&v).expect("a decoded value re-encodes");
        let back: T = codec.decode(&again).expect("a re-encoded value decodes");
        assert_eq!(codec.encode(&back).expect("encodes"), again);
    }
}

fn all<C: Codec>(codec: &C, bytes: &[u8]) {
    check::<C, u64>(codec, bytes);
    check::<C, String>(codec, bytes);
    // MsgPack reads and writes these two in bulk (the round trip crosses both paths).
    check::<C, Vec<u8>>(codec, bytes);
    check::<C, Vec<u32>>(codec, bytes);
    check::<C, (bool, Option<String>)>(codec, bytes);
    check::<C, BTreeMap<String, Vec<u8>>>(codec, bytes);
    check::<C, Shape>(codec, bytes);
    check::<C, Option<Option<u8>>>(codec, bytes);
}

fuzz_target!(|bytes: &[u8]| {
    all(&MsgPack, bytes);
    all(&Postcard, bytes);
    all(&Json, bytes);
    let _ = Json.decode::<serde_json::Value>(bytes);
    let _ = MsgPack.decode::<serde_json::Value>(bytes);
    let _ = MsgPack.to_json(bytes);
});
