//! The connector's optional native OTLP encoders: `connector.otlp._native`.
//!
//! Each encoder is built for one mapping and writes the common shape of its signal (the
//! shape connector/otlp/compiled.py writes inline) straight from the event's JSON text,
//! to the same bytes. Whatever it does not fully understand, valid or not, it hands to
//! `fallback`, the pure-Python `from_text`, which decides and words any failure: so the
//! native path can only ever be faster, never different (tests/otlp/test_native.py).

mod json;
mod time;

use std::collections::HashMap;

use json::Value;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

const CACHED: usize = 4096; // resource keys kept, as the Python encoders' caches
const ZERO: [u8; 16] = [0; 16];

fn hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let b = text.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let mut out = [0; N];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        out[i] = (digit(pair[0])? << 4 | digit(pair[1])?) as u8;
    }
    (out[..] != ZERO[..N]).then_some(out) // an all-zero id is invalid in OTLP
}

fn varint(out: &mut Vec<u8>, mut n: usize) {
    while n > 0x7f {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn varint_len(n: usize) -> usize {
    (usize::BITS - (n | 1).leading_zeros()).div_ceil(7) as usize
}

/// A length-delimited field: tag, length, bytes.
fn field(out: &mut Vec<u8>, tag: u8, payload: &[u8]) {
    out.push(tag);
    varint(out, payload.len());
    out.extend_from_slice(payload);
}

fn non_empty(value: Option<Value<'_>>) -> Option<&str> {
    match value? {
        Value::Str(s) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// The resource key `(service,)`, one tuple per service while there are few.
struct Keys(HashMap<String, Py<PyTuple>>);

impl Keys {
    fn get<'py>(&mut self, py: Python<'py>, service: &str) -> PyResult<Bound<'py, PyTuple>> {
        if let Some(key) = self.0.get(service) {
            return Ok(key.bind(py).clone());
        }
        let key = PyTuple::new(py, [PyString::new(py, service)])?;
        if self.0.len() < CACHED {
            self.0.insert(service.to_owned(), key.clone().unbind());
        }
        Ok(key)
    }
}

/// Spans: (trace_id, span_id, parent_span_id, service, operation, start_time, duration_ms,
/// status), those and no other fields.
#[pyclass(module = "connector.otlp._native")]
struct SpanEncoder {
    names: [String; 8],
    fallback: Py<PyAny>,
    keys: Keys,
    buf: Vec<u8>,
}

struct Span<'a> {
    service: &'a str,
    trace_id: [u8; 16],
}

impl SpanEncoder {
    /// The Span message into `self.buf`, or None for the Python path.
    fn write<'a>(&mut self, text: &'a str) -> Option<Span<'a>> {
        let names: [&str; 8] = std::array::from_fn(|i| self.names[i].as_str());
        let mut v = [None; 8];
        json::read_object(text, &names, &mut v)?;
        let [trace, span, parent, service, operation, start, duration, status] = v;
        let trace_id: [u8; 16] = hex(match trace? { Value::Str(s) => s, _ => return None })?;
        let span_id: [u8; 8] = hex(match span? { Value::Str(s) => s, _ => return None })?;
        let parent_id: Option<[u8; 8]> = match parent {
            None | Some(Value::Null) => None,
            Some(Value::Str(s)) => Some(hex(s)?),
            _ => return None,
        };
        let (service, operation) = (non_empty(service)?, non_empty(operation)?);
        let begin = match start? {
            Value::Str(s) => time::nanos(s)?,
            _ => return None,
        };
        // Python: begin + round(duration * 1_000_000), exact for an int, half to even for
        // a float; end must be within begin..2**64 - 1
        let end = i128::from(begin)
            + match duration? {
                Value::Int(n) => i128::from(n) * 1_000_000,
                Value::Float(x) => {
                    let r = (x * 1e6).round_ties_even();
                    if !(r.abs() < 1e20) {
                        return None;
                    }
                    r as i128
                }
                _ => return None,
            };
        if end < i128::from(begin) || end > i128::from(u64::MAX) {
            return None;
        }
        let code: u8 = match status {
            None | Some(Value::Null) | Some(Value::Str("UNSET")) => 0,
            Some(Value::Str("OK")) => 1,
            Some(Value::Str("ERROR")) => 2,
            _ => return None,
        };
        let out = &mut self.buf;
        out.clear();
        out.extend_from_slice(b"\x0a\x10");
        out.extend_from_slice(&trace_id);
        out.extend_from_slice(b"\x12\x08");
        out.extend_from_slice(&span_id);
        if let Some(parent_id) = parent_id {
            out.extend_from_slice(b"\x22\x08");
            out.extend_from_slice(&parent_id);
        }
        field(out, 0x2a, operation.as_bytes()); // name 5
        out.extend_from_slice(b"\x30\x01\x39"); // kind 6 INTERNAL; start 7
        out.extend_from_slice(&begin.to_le_bytes());
        out.push(0x41); // end 8
        out.extend_from_slice(&(end as u64).to_le_bytes());
        if code != 0 {
            out.extend_from_slice(&[0x7a, 0x02, 0x18, code]); // status 15 {code 3}
        }
        Some(Span { service, trace_id })
    }
}

#[pymethods]
impl SpanEncoder {
    #[new]
    fn new(names: [String; 8], fallback: Py<PyAny>) -> Self {
        SpanEncoder { names, fallback, keys: Keys(HashMap::new()), buf: Vec::with_capacity(256) }
    }

    /// The item ((service,), trace id, Span bytes) of one event, as compiled.py's from_text.
    fn from_text<'py>(&mut self, event: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = event.py();
        if let Ok(text) = event.cast::<PyString>().map_err(PyErr::from).and_then(|s| s.to_str()) {
            if let Some(span) = self.write(text) {
                let key = self.keys.get(py, span.service)?;
                let trace_id = PyBytes::new(py, &span.trace_id);
                let payload = PyBytes::new(py, &self.buf);
                return Ok(PyTuple::new(py, [key.into_any(), trace_id.into_any(), payload.into_any()])?
                    .into_any());
            }
        }
        self.fallback.bind(py).call1((event,))
    }
}

/// Log records: (timestamp, severity, body, service), those and no other fields.
#[pyclass(module = "connector.otlp._native")]
struct LogEncoder {
    names: [String; 4],
    severities: HashMap<String, u8>,
    fallback: Py<PyAny>,
    keys: Keys,
    buf: Vec<u8>,
}

impl LogEncoder {
    /// The LogRecord message into `self.buf` and its service, or None for the Python path.
    fn write<'a>(&mut self, text: &'a str) -> Option<&'a str> {
        let names: [&str; 4] = std::array::from_fn(|i| self.names[i].as_str());
        let mut v = [None; 4];
        json::read_object(text, &names, &mut v)?;
        let [time, severity, body, service] = v;
        let nanos = match time? {
            Value::Str(s) => time::nanos(s)?,
            _ => return None,
        };
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
            keys: Keys(HashMap::new()),
            buf: Vec::with_capacity(256),
        }
    }

    /// The item ((service,), None, LogRecord bytes) of one event, as compiled.py's from_text.
    fn from_text<'py>(&mut self, event: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = event.py();
        if let Ok(text) = event.cast::<PyString>().map_err(PyErr::from).and_then(|s| s.to_str()) {
            if let Some(service) = self.write(text) {
                let key = self.keys.get(py, service)?;
                let payload = PyBytes::new(py, &self.buf);
                return Ok(PyTuple::new(py, [key.into_any(), py.None().into_bound(py), payload.into_any()])?
                    .into_any());
            }
        }
        self.fallback.bind(py).call1((event,))
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<SpanEncoder>()?;
    m.add_class::<LogEncoder>()?;
    Ok(())
}
