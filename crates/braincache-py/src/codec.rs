//! The codec Python values are stored with: the backend's own, when it can carry them.

use crate::value::PyValue;
use braincache::core::{Codec, CodecError, Json};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The backend's default codec when it is self-describing (it can decode a value without being
/// told its type, as Python values need), otherwise JSON.
///
/// The choice is made once per backend by a probe, not by the codec's name, so the Python
/// package follows whatever the backend's default codec is: a Rust program that opens the same
/// store with the same codec reads the same values. [`PyCodec::name`] says which was chosen.
#[derive(Debug, Clone)]
pub struct PyCodec<C> {
    native: Option<C>,
}

impl<C: Codec + Default> PyCodec<C> {
    /// Probes `C::default()` with a value of every shape and keeps it when it round-trips.
    pub fn detect() -> Self {
        let codec = C::default();
        let probe = PyValue::Map(vec![
            (
                "list".into(),
                PyValue::List(vec![
                    PyValue::Null,
                    PyValue::Bool(true),
                    PyValue::Int(-7),
                    PyValue::UInt(u64::MAX),
                    PyValue::Float(0.5),
                ]),
            ),
            ("s".into(), PyValue::Str("x".into())),
        ]);
        let round_trips = codec
            .encode(&probe)
            .and_then(|bytes| codec.decode::<PyValue>(&bytes))
            .is_ok_and(|back| back == probe);
        PyCodec {
            native: round_trips.then_some(codec),
        }
    }
}

impl<C: Codec> PyCodec<C> {
    /// The name of the codec in use (`C::NAME`, or `"json"`).
    pub fn name(&self) -> &'static str {
        match self.native {
            Some(_) => C::NAME,
            None => Json::NAME,
        }
    }
}

impl<C: Codec> Codec for PyCodec<C> {
    const NAME: &'static str = "python";

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        match &self.native {
            Some(c) => c.encode(value),
            None => Json.encode(value),
        }
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        match &self.native {
            Some(c) => c.decode(bytes),
            None => Json.decode(bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use braincache::core::Postcard;

    #[test]
    fn json_is_kept_and_postcard_falls_back() {
        assert_eq!(PyCodec::<Json>::detect().name(), "json");
        // postcard is not self-describing: it cannot decode a `PyValue`.
        assert_eq!(PyCodec::<Postcard>::detect().name(), "json");
    }
}
