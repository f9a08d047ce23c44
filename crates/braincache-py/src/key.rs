//! Collision-free keys for the `@cache` decorator: a canonical encoding of a call.

use crate::value::MAX_DEPTH;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyBytes, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PySet, PyString, PyTuple,
};
use std::fmt::Write;

/// The cache key of a call: `name`, then the positional arguments, then the keyword arguments
/// sorted by name, each in a typed, length-prefixed encoding. Two calls get the same key only
/// when their arguments are equal and of the same types (`1`, `1.0`, `True` and `"1"` differ;
/// so do `(1,)` and `[1]`), and different functions never share keys.
///
/// # Errors
/// `TypeError` naming the type of an argument that has no canonical encoding (only `None`,
/// `bool`, `int`, `float`, `str`, `bytes`, `tuple`, `list`, `dict`, `set`, `frozenset`).
#[pyfunction]
#[pyo3(signature = (name, args, kwargs = None))]
pub fn call_key(
    name: &str,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<String> {
    let mut out = String::with_capacity(name.len() + 32);
    out.push_str(name);
    out.push(':');
    encode(args.as_any(), &mut out, 0)?;
    if let Some(kwargs) = kwargs.filter(|k| !k.is_empty()) {
        encode(kwargs.as_any(), &mut out, 0)?;
    }
    Ok(out)
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string())
}

fn push_str(tag: char, s: &str, out: &mut String) {
    let _ = write!(out, "{tag}{}:{s}", s.len());
}

/// Encodes the items of a collection sorted by their encodings (sets, dict entries).
fn sorted(tag: char, mut parts: Vec<String>, out: &mut String) {
    parts.sort_unstable();
    let _ = write!(out, "{tag}{}(", parts.len());
    for p in parts {
        out.push_str(&p);
    }
    out.push(')');
}

fn encode(obj: &Bound<'_, PyAny>, out: &mut String, depth: usize) -> PyResult<()> {
    if depth > MAX_DEPTH {
        return Err(PyValueError::new_err(
            "argument nested too deeply to make a cache key (or containing itself)",
        ));
    }
    if obj.is_none() {
        out.push('n');
    } else if obj.is_instance_of::<PyBool>() {
        out.push(if obj.is_truthy()? { 'T' } else { 'F' });
    } else if let Ok(s) = obj.cast::<PyString>() {
        push_str('s', s.to_str()?, out);
    } else if obj.is_instance_of::<PyInt>() {
        // Decimal digits, any size.
        let digits = obj.str()?;
        push_str('i', digits.to_str()?, out);
    } else if let Ok(f) = obj.cast::<PyFloat>() {
        let _ = write!(out, "f{:016x}", f.value().to_bits());
    } else if let Ok(b) = obj.cast::<PyBytes>() {
        let bytes = b.as_bytes();
        let _ = write!(out, "b{}:", bytes.len());
        for byte in bytes {
            let _ = write!(out, "{byte:02x}");
        }
    } else if let Ok(t) = obj.cast::<PyTuple>() {
        let _ = write!(out, "t{}(", t.len());
        for item in t.iter() {
            encode(&item, out, depth + 1)?;
        }
        out.push(')');
    } else if let Ok(l) = obj.cast::<PyList>() {
        let _ = write!(out, "l{}(", l.len());
        for item in l.iter() {
            encode(&item, out, depth + 1)?;
        }
        out.push(')');
    } else if let Ok(d) = obj.cast::<PyDict>() {
        let mut parts = Vec::with_capacity(d.len());
        for (k, v) in d.iter() {
            let mut part = String::new();
            encode(&k, &mut part, depth + 1)?;
            encode(&v, &mut part, depth + 1)?;
            parts.push(part);
        }
        sorted('d', parts, out);
    } else if let Ok(s) = obj.cast::<PySet>() {
        let mut parts = Vec::with_capacity(s.len());
        for item in s.iter() {
            let mut part = String::new();
            encode(&item, &mut part, depth + 1)?;
            parts.push(part);
        }
        sorted('S', parts, out);
    } else if let Ok(s) = obj.cast::<PyFrozenSet>() {
        let mut parts = Vec::with_capacity(s.len());
        for item in s.iter() {
            let mut part = String::new();
            encode(&item, &mut part, depth + 1)?;
            parts.push(part);
        }
        sorted('z', parts, out);
    } else {
        return Err(PyTypeError::new_err(format!(
            "@cache cannot make a key from an argument of type '{}': arguments must be None, \
             bool, int, float, str, bytes, or tuples, lists, dicts and sets of those",
            type_name(obj)
        )));
    }
    Ok(())
}
