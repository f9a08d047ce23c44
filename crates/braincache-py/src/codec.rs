//! Which codec Python values are stored with: the backend's own, when it can carry them.

use crate::value::PyValue;
use braincache::base::Codec;

/// True when `C::default()` can store Python values: it decodes a value without being told its
/// type (it is self-describing), so a value of every shape round-trips.
///
/// The Python package stores values with the backend's default codec when this holds and with
/// JSON otherwise (postcard, the binary default before MessagePack, is not self-describing). The
/// choice is made by this probe rather than by the codec's name, so the package follows the
/// backend's default codec, and a Rust program using that same codec reads the same values.
pub fn carries_python_values<C: Codec + Default>() -> bool {
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
    round_trips(&codec, &probe)
}

/// True when the codec keeps NaN and the infinities (serde_json writes them as `null`).
pub fn carries_non_finite<C: Codec + Default>() -> bool {
    let probe = PyValue::List(vec![
        PyValue::Float(f64::NAN),
        PyValue::Float(f64::INFINITY),
        PyValue::Float(f64::NEG_INFINITY),
    ]);
    let codec = C::default();
    match codec
        .encode(&probe)
        .and_then(|bytes| codec.decode::<PyValue>(&bytes))
    {
        Ok(PyValue::List(back)) => matches!(
            back.as_slice(),
            [PyValue::Float(a), PyValue::Float(b), PyValue::Float(c)]
                if a.is_nan() && *b == f64::INFINITY && *c == f64::NEG_INFINITY
        ),
        _ => false,
    }
}

fn round_trips<C: Codec>(codec: &C, probe: &PyValue) -> bool {
    codec
        .encode(probe)
        .and_then(|bytes| codec.decode::<PyValue>(&bytes))
        .is_ok_and(|back| back == *probe)
}

#[cfg(test)]
mod tests {
    use super::*;
    use braincache::base::{Json, Postcard};

    #[test]
    fn json_carries_python_values_and_postcard_does_not() {
        assert!(carries_python_values::<Json>());
        // postcard is not self-describing: it cannot decode a `PyValue`.
        assert!(!carries_python_values::<Postcard>());
    }

    #[test]
    fn the_non_finite_probe_agrees_with_the_codec() {
        let kept = Json
            .encode(&f64::NAN)
            .and_then(|b| Json.decode::<f64>(&b))
            .is_ok_and(f64::is_nan);
        assert_eq!(carries_non_finite::<Json>(), kept);
        assert!(!carries_non_finite::<Postcard>());
    }
}
