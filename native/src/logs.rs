//! Log records: the common shape of compiled.py's log encoder, read and written here.

use std::collections::HashMap;

use pyo3::prelude::*;

use crate::json::{self, Value};
use crate::{field, refused_by_native, string, texts, time, varint, written_items};
use crate::{varint_len, write_all, Keys, Many};

/// Log records: (timestamp, severity, body, service), those and no other fields.
#[pyclass(module = "connector.otlp._native")]
pub struct LogEncoder {
    names: [String; 4],
    severities: HashMap<String, u8>,
    fallback: Py<PyAny>,
    keys: Keys,
}

/// The LogRecord message appended to `out` and its service, or None for the Python path
/// (`out` untouched).
fn write<'a>(
    names: &[String; 4],
    severities: &HashMap<String, u8>,
    text: &'a str,
    out: &mut Vec<u8>,
) -> Option<&'a str> {
    let mut v = [None; 4];
    json::read_object(text, names, &mut v)?;
    let [time, severity, body, service] = v;
    let nanos = time::nanos(string(time)?, false)?;
    let service = match service {
        None | Some(Value::Null) | Some(Value::Str("")) => "unknown_service",
        Some(Value::Str(s)) => s,
        _ => return None,
    };
    let severity = match severity {
        None | Some(Value::Null) => "",
        // Python strips and upper-cases Unicode: ASCII alone is read here
        Some(Value::Str(s)) if s.len() <= 32 && s.is_ascii() => s,
        _ => return None,
    };
    let body = match body {
        None | Some(Value::Null) => None,
        Some(Value::Str(s)) => Some(s),
        _ => return None,
    };
    out.push(0x09); // time_unix_nano 1
    out.extend_from_slice(&nanos.to_le_bytes());
    if !severity.is_empty() {
        let name = severity.trim_matches(' ').to_ascii_uppercase();
        if let Some(&number) = severities.get(&name) {
            out.extend_from_slice(&[0x10, number]); // severity_number 2
        }
        field(out, 0x1a, severity.as_bytes()); // severity_text 3
    }
    if let Some(body) = body {
        // body 5: AnyValue{string_value 1}
        out.push(0x2a);
        varint(out, 1 + varint_len(body.len()) + body.len());
        field(out, 0x0a, body.as_bytes());
    }
    out.push(0x59); // observed_time_unix_nano 11
    out.extend_from_slice(&nanos.to_le_bytes());
    Some(service)
}

#[pymethods]
impl LogEncoder {
    #[new]
    fn new(names: [String; 4], severities: HashMap<String, u8>, fallback: Py<PyAny>) -> Self {
        LogEncoder {
            names,
            severities,
            fallback,
            keys: Keys::default(),
        }
    }

    /// The items ((service,), None, LogRecord bytes) of many events, as compiled.py's
    /// from_text of each in turn, read and written without the GIL (as SpanEncoder.many).
    fn many<'py>(slf: &Bound<'py, Self>, events: Vec<Bound<'py, PyAny>>) -> PyResult<Many<'py>> {
        let py = slf.py();
        let texts = texts(&events);
        let mut this = slf.borrow_mut();
        let (names, severities) = (&this.names, &this.severities);
        let mut buf = Vec::with_capacity(texts.len() * 64);
        let read = write_all(py, &texts, &mut buf, |text, out| {
            write(names, severities, text, out)
        });
        let none = || py.None().into_bound(py);
        let (items, refused) =
            written_items(py, read, &buf, &mut this.keys, |service| (*service, none()))?;
        let fallback = this.fallback.bind(py).clone();
        drop(this);
        refused_by_native(fallback, &events, items, refused)
    }
}
