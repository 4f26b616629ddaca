//! Log records: the common shape of compiled.py's log encoder, read and written here.

use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::json::{self, Value};
use crate::{fall_back, field, item, string, text_of, time, varint, varint_len, Keys};

/// Log records: (timestamp, severity, body, service), those and no other fields.
#[pyclass(module = "connector.otlp._native")]
pub struct LogEncoder {
    names: [String; 4],
    severities: HashMap<String, u8>,
    fallback: Py<PyAny>,
    keys: Keys,
    buf: Vec<u8>,
}

impl LogEncoder {
    /// The LogRecord message into `self.buf` and its service, or None for the Python path.
    fn write<'a>(&mut self, text: &'a str) -> Option<&'a str> {
        let mut v = [None; 4];
        json::read_object(text, &self.names, &mut v)?;
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
        let out = &mut self.buf;
        out.clear();
        out.push(0x09); // time_unix_nano 1
        out.extend_from_slice(&nanos.to_le_bytes());
        if !severity.is_empty() {
            let name = severity.trim_matches(' ').to_ascii_uppercase();
            if let Some(&number) = self.severities.get(&name) {
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
            buf: Vec::with_capacity(256),
        }
    }

    /// The item ((service,), None, LogRecord bytes) of one event, as compiled.py's from_text.
    #[pyo3(name = "from_text")]
    fn encode<'py>(
        mut slf: PyRefMut<'py, Self>,
        event: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = event.py();
        let this = &mut *slf;
        if let Some(service) = text_of(event).and_then(|text| this.write(text)) {
            let key = this.keys.get(py, service)?;
            let payload = PyBytes::new(py, &this.buf).into_any();
            return item(key, py.None().into_bound(py), payload);
        }
        fall_back(slf, |this| &this.fallback, event)
    }
}
