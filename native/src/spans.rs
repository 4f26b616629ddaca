//! Spans: the common shape of compiled.py's span encoder, read and written here.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::json::{self, Value};
use crate::{field, hex, non_empty, refused_by_native, string, texts, time, written_items};
use crate::{write_all, Keys, Many};

/// Spans: (trace_id, span_id, parent_span_id, service, operation, start_time, duration_ms,
/// status), those and no other fields.
#[pyclass(module = "connector.otlp._native")]
pub struct SpanEncoder {
    names: [String; 8],
    fallback: Py<PyAny>,
    keys: Keys,
}

struct Span<'a> {
    service: &'a str,
    trace_id: [u8; 16],
}

/// The Span message appended to `out`, or None for the Python path (`out` untouched).
fn write<'a>(names: &[String; 8], text: &'a str, out: &mut Vec<u8>) -> Option<Span<'a>> {
    let mut v = [None; 8];
    json::read_object(text, names, &mut v)?;
    let [trace, span, parent, service, operation, start, duration, status] = v;
    let trace_id: [u8; 16] = hex(string(trace)?)?;
    let span_id: [u8; 8] = hex(string(span)?)?;
    let parent_id: Option<[u8; 8]> = match parent {
        None | Some(Value::Null) => None,
        Some(Value::Str(s)) => Some(hex(s)?),
        _ => return None,
    };
    let (service, operation) = (non_empty(service)?, non_empty(operation)?);
    let begin = time::nanos(string(start)?, false)?;
    // Python: begin + round(duration * 1_000_000), exact for an int, half to even for
    // a float; end must be within begin..2**64 - 1
    let end = i128::from(begin)
        + match duration? {
            Value::Int(n) => i128::from(n) * 1_000_000,
            Value::Float(x) => {
                let r = (x * 1e6).round_ties_even();
                if r.abs() >= 1e20 {
                    return None; // inf too (x is finite: never NaN)
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

#[pymethods]
impl SpanEncoder {
    #[new]
    fn new(names: [String; 8], fallback: Py<PyAny>) -> Self {
        SpanEncoder {
            names,
            fallback,
            keys: Keys::default(),
        }
    }

    /// The items ((service,), trace id, Span bytes) of many events, as compiled.py's
    /// from_text of each in turn. They are read and written without the GIL: a thread that
    /// encodes a batch here runs beside the one making events.
    fn many<'py>(slf: &Bound<'py, Self>, events: Vec<Bound<'py, PyAny>>) -> PyResult<Many<'py>> {
        let py = slf.py();
        let texts = texts(&events);
        let mut this = slf.borrow_mut();
        let names = &this.names;
        let mut buf = Vec::with_capacity(texts.len() * 96);
        let read = write_all(py, &texts, &mut buf, |text, out| write(names, text, out));
        let (items, refused) = written_items(py, read, &buf, &mut this.keys, |span| {
            (span.service, PyBytes::new(py, &span.trace_id).into_any())
        })?;
        let fallback = this.fallback.bind(py).clone();
        drop(this);
        refused_by_native(fallback, &events, items, refused)
    }
}
