//! MessagePack bytes straight to Python objects, for the memory backend's `get`.

use crate::value::MAX_DEPTH;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyList, PyString};
use rmp::Marker;

/// The Python object that the MessagePack value in `bytes` stands for, built as it is read
/// (no intermediate value, no serde), or `None` when `bytes` hold anything but one value made
/// of nil, booleans, integers, floats, strings, arrays and maps with string keys, nested at
/// most [`MAX_DEPTH`] + 1 levels: the caller then decodes them through the cache, whose codec
/// reads (or refuses, with the error a Rust caller gets) whatever else a store may hold.
///
/// What it builds is what decoding a [`PyValue`](crate::value::PyValue) and converting it
/// builds: nil is `None`, integers are `int` whatever their width, `float32` widens to `float`,
/// a map is a `dict` in stored order (a repeated key keeps its last value).
pub fn to_py<'py>(py: Python<'py>, bytes: &[u8]) -> Option<Bound<'py, PyAny>> {
    let mut rd = Reader { bytes, pos: 0 };
    let value = rd.value(py, 0)?;
    (rd.pos == bytes.len()).then_some(value)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn len8(&mut self) -> Option<usize> {
        self.array::<1>().map(|b| usize::from(b[0]))
    }

    fn len16(&mut self) -> Option<usize> {
        self.array().map(|b| usize::from(u16::from_be_bytes(b)))
    }

    fn len32(&mut self) -> Option<usize> {
        self.array()
            .and_then(|b| usize::try_from(u32::from_be_bytes(b)).ok())
    }

    /// A string's bytes, checked to be UTF-8, after its marker.
    fn str_body(&mut self, marker: Marker) -> Option<&'a str> {
        let len = match marker {
            Marker::FixStr(n) => usize::from(n),
            Marker::Str8 => self.len8()?,
            Marker::Str16 => self.len16()?,
            Marker::Str32 => self.len32()?,
            _ => return None,
        };
        std::str::from_utf8(self.take(len)?).ok()
    }

    fn value<'py>(&mut self, py: Python<'py>, depth: usize) -> Option<Bound<'py, PyAny>> {
        let marker = Marker::from_u8(self.array::<1>()?[0]);
        Some(match marker {
            Marker::Null => py.None().into_bound(py),
            Marker::False => PyBool::new(py, false).to_owned().into_any(),
            Marker::True => PyBool::new(py, true).to_owned().into_any(),
            Marker::FixPos(n) => int(py, n),
            Marker::FixNeg(n) => int(py, n),
            Marker::U8 => int(py, u8::from_be_bytes(self.array()?)),
            Marker::U16 => int(py, u16::from_be_bytes(self.array()?)),
            Marker::U32 => int(py, u32::from_be_bytes(self.array()?)),
            Marker::U64 => int(py, u64::from_be_bytes(self.array()?)),
            Marker::I8 => int(py, i8::from_be_bytes(self.array()?)),
            Marker::I16 => int(py, i16::from_be_bytes(self.array()?)),
            Marker::I32 => int(py, i32::from_be_bytes(self.array()?)),
            Marker::I64 => int(py, i64::from_be_bytes(self.array()?)),
            Marker::F32 => {
                PyFloat::new(py, f64::from(f32::from_be_bytes(self.array()?))).into_any()
            }
            Marker::F64 => PyFloat::new(py, f64::from_be_bytes(self.array()?)).into_any(),
            Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => {
                PyString::new(py, self.str_body(marker)?).into_any()
            }
            Marker::FixArray(_) | Marker::Array16 | Marker::Array32 if depth <= MAX_DEPTH => {
                let len = match marker {
                    Marker::FixArray(n) => usize::from(n),
                    Marker::Array16 => self.len16()?,
                    _ => self.len32()?,
                };
                // Each item takes at least one byte: a longer count is a damaged value, and
                // must not size an allocation.
                if len > self.bytes.len() - self.pos {
                    return None;
                }
                let mut items = Vec::with_capacity(len);
                for _ in 0..len {
                    items.push(self.value(py, depth + 1)?);
                }
                PyList::new(py, items).ok()?.into_any()
            }
            Marker::FixMap(_) | Marker::Map16 | Marker::Map32 if depth <= MAX_DEPTH => {
                let len = match marker {
                    Marker::FixMap(n) => usize::from(n),
                    Marker::Map16 => self.len16()?,
                    _ => self.len32()?,
                };
                let dict = PyDict::new(py);
                for _ in 0..len {
                    let key_marker = Marker::from_u8(self.array::<1>()?[0]);
                    let key = PyString::new(py, self.str_body(key_marker)?);
                    let value = self.value(py, depth + 1)?;
                    dict.set_item(key, value).ok()?;
                }
                dict.into_any()
            }
            // Binary, extension types (the codec's nested-`None` marker among them), reserved
            // bytes, and values nested deeper than any the package stores.
            _ => return None,
        })
    }
}

fn int<'py, T>(py: Python<'py>, n: T) -> Bound<'py, PyAny>
where
    T: IntoPyObject<'py, Output = Bound<'py, pyo3::types::PyInt>, Error = std::convert::Infallible>,
{
    let Ok(int) = n.into_pyobject(py);
    int.into_any()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::PyValue;
    use braincache::base::{Codec, MsgPack};

    /// `repr` of what the reader builds from `bytes`, `None` when it declines them.
    fn read(bytes: &[u8]) -> Option<String> {
        Python::initialize();
        Python::attach(|py| to_py(py, bytes).map(|v| v.repr().unwrap().to_string()))
    }

    /// `repr` of what decoding a `PyValue` and converting it builds (the cache's own path).
    fn through_pyvalue(bytes: &[u8]) -> String {
        Python::initialize();
        let v: PyValue = MsgPack.decode(bytes).unwrap();
        Python::attach(|py| v.to_py(py).unwrap().bind(py).repr().unwrap().to_string())
    }

    fn s(x: &str) -> PyValue {
        PyValue::Str(x.to_owned())
    }

    #[test]
    fn builds_what_the_cache_path_builds() {
        let long = "é".repeat(40_000); // str32
        let values = vec![
            PyValue::Null,
            PyValue::Bool(false),
            PyValue::Bool(true),
            PyValue::Int(0),
            PyValue::Int(127),
            PyValue::Int(128),
            PyValue::Int(-1),
            PyValue::Int(-32),
            PyValue::Int(-33),
            PyValue::Int(255),
            PyValue::Int(65_535),
            PyValue::Int(65_536),
            PyValue::Int(i64::from(u32::MAX) + 1),
            PyValue::Int(-129),
            PyValue::Int(-40_000),
            PyValue::Int(i64::from(i32::MIN) - 1),
            PyValue::Int(i64::MIN),
            PyValue::Int(i64::MAX),
            PyValue::UInt(u64::MAX),
            PyValue::Float(0.0),
            PyValue::Float(-0.0),
            PyValue::Float(2.0),
            PyValue::Float(0.1),
            PyValue::Float(f64::MAX),
            PyValue::Float(f64::INFINITY),
            PyValue::Float(f64::NEG_INFINITY),
            s(""),
            s("v"),
            s(&"x".repeat(31)),
            s(&"x".repeat(32)),  // str8
            s(&"ü".repeat(200)), // str16
            s(&long),
            s("😀 \u{0} \u{ffff}"),
            PyValue::List(vec![]),
            PyValue::Map(vec![]),
            PyValue::List((0..20).map(PyValue::Int).collect()), // array16
            PyValue::Map(
                (0..20)
                    .map(|i| (format!("k{i}"), PyValue::Int(i)))
                    .collect(),
            ), // map16
            PyValue::Map(vec![
                (
                    "a".into(),
                    PyValue::List(vec![PyValue::Null, PyValue::Bool(true), s("")]),
                ),
                (
                    "".into(),
                    PyValue::Map(vec![("b".into(), PyValue::Float(1.5))]),
                ),
                ("é".into(), PyValue::Int(0)),
            ]),
        ];
        for v in values {
            let bytes = MsgPack.encode(&v).unwrap();
            assert_eq!(read(&bytes), Some(through_pyvalue(&bytes)), "{v:?}");
        }
    }

    #[test]
    fn nan_stays_nan() {
        let bytes = MsgPack.encode(&PyValue::Float(f64::NAN)).unwrap();
        assert_eq!(read(&bytes).as_deref(), Some("nan"));
    }

    #[test]
    fn float32_and_narrow_encodings_of_other_writers() {
        // A Rust program may store an f32, and other encoders may pick wider integer formats.
        assert_eq!(read(&[0xca, 0x3f, 0xc0, 0, 0]).as_deref(), Some("1.5"));
        assert_eq!(read(&[0xcf, 0, 0, 0, 0, 0, 0, 0, 7]).as_deref(), Some("7"));
        assert_eq!(read(&[0xd3, 0, 0, 0, 0, 0, 0, 0, 7]).as_deref(), Some("7"));
        assert_eq!(read(&[0xdc, 0, 1, 0xc0]).as_deref(), Some("[None]"));
        assert_eq!(read(&[0xdd, 0, 0, 0, 1, 0xc3]).as_deref(), Some("[True]"));
        assert_eq!(
            read(&[0xdf, 0, 0, 0, 1, 0xa1, b'k', 0xc2]).as_deref(),
            Some("{'k': False}")
        );
        // A repeated key keeps its last value, as the cache path's dict does.
        let twice = [0x82, 0xa1, b'k', 1, 0xa1, b'k', 2];
        assert_eq!(read(&twice).as_deref(), Some("{'k': 2}"));
        assert_eq!(through_pyvalue(&twice), "{'k': 2}");
    }

    #[test]
    fn declines_what_it_does_not_take() {
        let cases: &[(&str, &[u8])] = &[
            ("empty", &[]),
            ("trailing byte", &[0xc0, 0xc0]),
            ("truncated string", &[0xa3, b'a', b'b']),
            ("truncated u64", &[0xcf, 0, 0]),
            (
                "array longer than the bytes",
                &[0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0],
            ),
            ("map longer than the bytes", &[0xdf, 0xff, 0xff, 0xff, 0xff]),
            ("invalid UTF-8", &[0xa2, 0xff, 0xfe]),
            ("integer key", &[0x81, 0x01, 0x02]),
            ("binary", &[0xc4, 0x01, 0x00]),
            ("nested-None extension", &[0xd4, 0x42, 0x01]),
            ("reserved byte", &[0xc1]),
        ];
        for (what, bytes) in cases {
            assert_eq!(read(bytes), None, "{what}");
        }
        // Deeper than the package stores: left to the codec.
        let mut deep = vec![0x91; MAX_DEPTH + 2];
        deep.push(0xc0);
        assert_eq!(read(&deep), None);
        let mut ok = vec![0x91; MAX_DEPTH + 1];
        ok.push(0xc0);
        assert!(read(&ok).is_some());
    }
}
