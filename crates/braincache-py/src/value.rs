//! Python values as serde values: what JSON can hold, and nothing that needs pickle.

use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// How deeply lists and dicts may nest. `serde_json` refuses documents nested deeper than 128
/// levels, and the file backend wraps each value in two; 100 leaves room and catches cycles.
pub const MAX_DEPTH: usize = 100;

/// One Python value that JSON can hold, as Rust data (so it can cross a GIL-free section).
///
/// It serializes as the matching serde data model value (`None` as a unit/none, `int` as `i64`
/// or `u64`, `dict` as a map with string keys), so a Rust program reading the same store with
/// `serde_json::Value` or a matching struct sees ordinary values.
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    /// `None`.
    Null,
    /// `True` / `False`.
    Bool(bool),
    /// An `int` in `[-2**63, 2**63)`.
    Int(i64),
    /// An `int` in `[2**63, 2**64)`.
    UInt(u64),
    /// A `float` (NaN and infinities included where the codec can hold them).
    Float(f64),
    /// A `str`.
    Str(String),
    /// A `list` (or a `tuple`, which comes back as a list).
    List(Vec<PyValue>),
    /// A `dict` with `str` keys, in insertion order.
    Map(Vec<(String, PyValue)>),
}

impl PyValue {
    /// Converts a Python object; `TypeError` names the type when JSON cannot hold it.
    ///
    /// # Errors
    /// `TypeError` for other types and non-`str` dict keys, `OverflowError` for integers outside
    /// `[-2**63, 2**64)`, `ValueError` for values nested deeper than [`MAX_DEPTH`] (or cyclic).
    pub fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<PyValue> {
        from_py(obj, 0)
    }

    /// Builds the Python object.
    pub fn to_py(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(match self {
            PyValue::Null => py.None(),
            PyValue::Bool(b) => PyBool::new(py, *b).to_owned().into_any().unbind(),
            PyValue::Int(i) => i.into_pyobject(py)?.into_any().unbind(),
            PyValue::UInt(u) => u.into_pyobject(py)?.into_any().unbind(),
            PyValue::Float(f) => PyFloat::new(py, *f).into_any().unbind(),
            PyValue::Str(s) => PyString::new(py, s).into_any().unbind(),
            PyValue::List(items) => {
                let list = PyList::empty(py);
                for item in items {
                    list.append(item.to_py(py)?)?;
                }
                list.into_any().unbind()
            }
            PyValue::Map(entries) => {
                let dict = PyDict::new(py);
                for (k, v) in entries {
                    dict.set_item(k, v.to_py(py)?)?;
                }
                dict.into_any().unbind()
            }
        })
    }

    /// True when a float in the value is NaN or infinite (which JSON cannot hold).
    pub fn has_non_finite(&self) -> bool {
        match self {
            PyValue::Float(f) => !f.is_finite(),
            PyValue::List(items) => items.iter().any(PyValue::has_non_finite),
            PyValue::Map(entries) => entries.iter().any(|(_, v)| v.has_non_finite()),
            _ => false,
        }
    }
}

fn unsupported(obj: &Bound<'_, PyAny>) -> PyErr {
    let name = obj
        .get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string());
    PyTypeError::new_err(format!(
        "braincache cannot store a value of type '{name}': values are what JSON holds \
         (None, bool, int, float, str, list, tuple, dict with str keys); braincache never pickles"
    ))
}

fn too_deep() -> PyErr {
    PyValueError::new_err(format!(
        "value nested more than {MAX_DEPTH} levels deep (or containing itself)"
    ))
}

fn int_value(obj: &Bound<'_, PyAny>) -> PyResult<PyValue> {
    if let Ok(i) = obj.extract::<i64>() {
        return Ok(PyValue::Int(i));
    }
    if let Ok(u) = obj.extract::<u64>() {
        return Ok(PyValue::UInt(u));
    }
    Err(PyOverflowError::new_err(
        "braincache stores integers in [-2**63, 2**64): this one is out of range",
    ))
}

fn from_py(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<PyValue> {
    // Exact types first (the common case, one pointer comparison each), subclasses after.
    if let Ok(s) = obj.cast_exact::<PyString>() {
        return Ok(PyValue::Str(s.to_str()?.to_owned()));
    }
    if obj.is_none() {
        return Ok(PyValue::Null);
    }
    if let Ok(b) = obj.cast_exact::<PyBool>() {
        return Ok(PyValue::Bool(b.is_true()));
    }
    if obj.is_exact_instance_of::<PyInt>() {
        return int_value(obj);
    }
    if let Ok(f) = obj.cast_exact::<PyFloat>() {
        return Ok(PyValue::Float(f.value()));
    }
    if depth >= MAX_DEPTH
        && (obj.is_instance_of::<PyList>()
            || obj.is_instance_of::<PyTuple>()
            || obj.is_instance_of::<PyDict>())
    {
        return Err(too_deep());
    }
    if let Ok(list) = obj.cast::<PyList>() {
        let mut items = Vec::with_capacity(list.len());
        for item in list.iter() {
            items.push(from_py(&item, depth + 1)?);
        }
        return Ok(PyValue::List(items));
    }
    if let Ok(tuple) = obj.cast::<PyTuple>() {
        let mut items = Vec::with_capacity(tuple.len());
        for item in tuple.iter() {
            items.push(from_py(&item, depth + 1)?);
        }
        return Ok(PyValue::List(items));
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        let mut entries = Vec::with_capacity(dict.len());
        for (k, v) in dict.iter() {
            let Ok(k) = k.cast::<PyString>() else {
                let name = k
                    .get_type()
                    .name()
                    .map_or_else(|_| "?".to_owned(), |n| n.to_string());
                return Err(PyTypeError::new_err(format!(
                    "braincache stores dicts with str keys only (as JSON does), not '{name}'"
                )));
            };
            entries.push((k.to_str()?.to_owned(), from_py(&v, depth + 1)?));
        }
        return Ok(PyValue::Map(entries));
    }
    // Subclasses (str and int enums, float subclasses) are stored as their base type.
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(PyValue::Str(s.to_str()?.to_owned()));
    }
    if obj.is_instance_of::<PyBool>() {
        return Ok(PyValue::Bool(obj.is_truthy()?));
    }
    if obj.is_instance_of::<PyInt>() {
        return int_value(obj);
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(PyValue::Float(f.value()));
    }
    Err(unsupported(obj))
}

impl Serialize for PyValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PyValue::Null => s.serialize_none(),
            PyValue::Bool(b) => s.serialize_bool(*b),
            PyValue::Int(i) => s.serialize_i64(*i),
            PyValue::UInt(u) => s.serialize_u64(*u),
            PyValue::Float(f) => s.serialize_f64(*f),
            PyValue::Str(v) => s.serialize_str(v),
            PyValue::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            PyValue::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for PyValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PyValue, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = PyValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value JSON can hold")
    }

    fn visit_bool<E>(self, v: bool) -> Result<PyValue, E> {
        Ok(PyValue::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<PyValue, E> {
        Ok(PyValue::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<PyValue, E> {
        Ok(i64::try_from(v).map_or(PyValue::UInt(v), PyValue::Int))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<PyValue, E> {
        if let Ok(i) = i64::try_from(v) {
            Ok(PyValue::Int(i))
        } else if let Ok(u) = u64::try_from(v) {
            Ok(PyValue::UInt(u))
        } else {
            Err(E::custom("integer outside [-2**63, 2**64)"))
        }
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<PyValue, E> {
        u64::try_from(v)
            .map(|u| self.visit_u64(u))
            .unwrap_or_else(|_| Err(E::custom("integer outside [-2**63, 2**64)")))
    }

    fn visit_f64<E>(self, v: f64) -> Result<PyValue, E> {
        Ok(PyValue::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<PyValue, E> {
        Ok(PyValue::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<PyValue, E> {
        Ok(PyValue::Str(v))
    }

    fn visit_unit<E>(self) -> Result<PyValue, E> {
        Ok(PyValue::Null)
    }

    fn visit_none<E>(self) -> Result<PyValue, E> {
        Ok(PyValue::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<PyValue, D::Error> {
        PyValue::deserialize(d)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<PyValue, D::Error> {
        PyValue::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PyValue, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(PyValue::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PyValue, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some((k, v)) = map.next_entry::<String, PyValue>()? {
            entries.push((k, v));
        }
        Ok(PyValue::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use braincache::base::{Codec, Json};

    #[test]
    fn json_shape_is_plain_json() {
        let v = PyValue::Map(vec![
            (
                "a".into(),
                PyValue::List(vec![PyValue::Int(-1), PyValue::Null]),
            ),
            ("b".into(), PyValue::UInt(u64::MAX)),
            ("c".into(), PyValue::Float(1.5)),
            ("d".into(), PyValue::Bool(false)),
        ]);
        let bytes = Json.encode(&v).unwrap();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"a":[-1,null],"b":18446744073709551615,"c":1.5,"d":false}"#
        );
        assert_eq!(Json.decode::<PyValue>(&bytes).unwrap(), v);
        let as_value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(as_value["b"], serde_json::json!(u64::MAX));
    }

    #[test]
    fn floats_that_look_like_ints_stay_floats() {
        let bytes = Json.encode(&PyValue::Float(2.0)).unwrap();
        assert_eq!(Json.decode::<PyValue>(&bytes).unwrap(), PyValue::Float(2.0));
    }
}
