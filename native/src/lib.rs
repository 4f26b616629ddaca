//! The connector's optional native OTLP encoders: `connector.otlp._native`.
//!
//! Each encoder is built for one mapping and writes the common shape of its signal (the
//! shape connector/otlp/compiled.py writes inline for spans and log records; metrics
//! without attributes or histograms) straight from the event's JSON text, to the same
//! bytes. Whatever it does not fully understand, valid or not, it hands to `fallback`,
//! the pure-Python `from_text`, which decides and words any failure: so the native path
//! can only ever be faster, never different (tests/otlp/test_native.py).

mod json;
mod logs;
mod metrics;
mod request;
mod spans;
mod time;

use std::collections::HashMap;
use std::ops::Range;

use json::Value;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

const CACHED: usize = 4096; // resource keys kept, as the Python encoders' caches
const ZERO: [u8; 16] = [0; 16];

/// The event's text, if it is a str that is valid UTF-8 (no lone surrogates).
fn text_of<'a, 'py>(event: &'a Bound<'py, PyAny>) -> Option<&'a str> {
    event.cast::<PyString>().ok()?.to_str().ok()
}

/// A tuple of strings, bytes, ints, None and such tuples, untracked by the cycle collector:
/// it can be in no cycle, and the outputs hold thousands of items per batch, which would
/// otherwise set off a collection every few hundred events (what CPython does itself to
/// such a tuple, but only once a collection has walked it).
fn untracked<'py, T>(tuple: Bound<'py, T>) -> Bound<'py, T> {
    // SAFETY: a live tuple, owned here; its members are atomic or untracked tuples
    unsafe { pyo3::ffi::PyObject_GC_UnTrack(tuple.as_ptr().cast()) };
    tuple
}

/// A tuple of atomic values or tuples of them (see `untracked`).
fn tuple<'py>(
    py: Python<'py>,
    members: impl IntoIterator<Item = Bound<'py, PyAny>, IntoIter: ExactSizeIterator>,
) -> PyResult<Bound<'py, PyTuple>> {
    Ok(untracked(PyTuple::new(py, members)?))
}

/// The item (resource key, extra, payload) the outputs batch.
fn item<'py>(
    key: Bound<'py, PyTuple>,
    extra: Bound<'py, PyAny>,
    payload: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(tuple(key.py(), [key.into_any(), extra, payload])?.into_any())
}

/// What `many` returns: the items in the events' order, with the exception the Python path
/// raised in place of each item it refused, and those places.
type Many<'py> = (Bound<'py, PyList>, Vec<usize>);

/// The events' texts, read while the GIL is held (a str's UTF-8 is made and cached then), to
/// be read again without it: the events are immutable and held alive by the caller's list.
fn texts<'a, 'py>(events: &'a [Bound<'py, PyAny>]) -> Vec<Option<&'a str>> {
    events.iter().map(text_of).collect()
}

/// The item of an event the native pass declined: the Python path's, or the exception it
/// raised (an `Exception`; anything else, such as KeyboardInterrupt, propagates).
fn declined<'py>(
    fallback: &Bound<'py, PyAny>,
    event: &Bound<'py, PyAny>,
    at: usize,
    failed: &mut Vec<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    match fallback.call1((event,)) {
        Ok(item) => Ok(item),
        Err(err) if err.is_instance_of::<PyException>(event.py()) => {
            failed.push(at);
            Ok(err.into_value(event.py()).into_bound(event.py()).into_any())
        }
        Err(err) => Err(err),
    }
}

/// `many`'s native pass: each text written by `write` into `buf`, with the GIL released
/// (the texts are read only): what `write` returned and the range of its bytes, or None
/// where it declined (writing nothing).
fn write_all<'a, R: Send>(
    py: Python<'_>,
    texts: &[Option<&'a str>],
    buf: &mut Vec<u8>,
    write: impl Fn(&'a str, &mut Vec<u8>) -> Option<R> + Sync,
) -> Vec<Option<(R, Range<usize>)>> {
    py.detach(|| {
        texts
            .iter()
            .map(|text| {
                let at = buf.len();
                let read = write((*text)?, buf)?;
                Some((read, at..buf.len()))
            })
            .collect()
    })
}

/// The items ((service,), extra, the bytes written) of the events `write_all` wrote (the
/// others None), and the places of those it did not, for `refused_by_native`.
fn written_items<'py, 'a, R>(
    py: Python<'py>,
    read: Vec<Option<(R, Range<usize>)>>,
    buf: &[u8],
    keys: &mut Keys,
    parts: impl Fn(&R) -> (&'a str, Bound<'py, PyAny>),
) -> PyResult<(Vec<Bound<'py, PyAny>>, Vec<usize>)> {
    let mut items = Vec::with_capacity(read.len());
    let mut refused = Vec::new();
    for (at, read) in read.into_iter().enumerate() {
        let Some((read, range)) = read else {
            items.push(py.None().into_bound(py));
            refused.push(at);
            continue;
        };
        let (service, extra) = parts(&read);
        let payload = PyBytes::new(py, &buf[range]).into_any();
        items.push(item(keys.get(py, service)?, extra, payload)?);
    }
    Ok((items, refused))
}

/// `many`'s end: the Python path's item (or exception) for each event the native pass
/// refused, in order, the encoder no longer borrowed: Python code runs there, and may use
/// the encoder again (another thread, or a re-entrant call).
fn refused_by_native<'py>(
    fallback: Bound<'py, PyAny>,
    events: &[Bound<'py, PyAny>],
    mut items: Vec<Bound<'py, PyAny>>,
    refused: Vec<usize>,
) -> PyResult<Many<'py>> {
    let mut failed = Vec::new();
    for at in refused {
        items[at] = declined(&fallback, &events[at], at, &mut failed)?;
    }
    Ok((PyList::new(fallback.py(), items)?, failed))
}

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

fn string(value: Option<Value<'_>>) -> Option<&str> {
    match value? {
        Value::Str(s) => Some(s),
        _ => None,
    }
}

fn non_empty(value: Option<Value<'_>>) -> Option<&str> {
    string(value).filter(|s| !s.is_empty())
}

/// The resource key `(service,)`, one tuple per service while there are few.
#[derive(Default)]
struct Keys(HashMap<String, Py<PyTuple>>);

impl Keys {
    fn get<'py>(&mut self, py: Python<'py>, service: &str) -> PyResult<Bound<'py, PyTuple>> {
        if let Some(key) = self.0.get(service) {
            return Ok(key.bind(py).clone());
        }
        let key = tuple(py, [PyString::new(py, service).into_any()])?;
        if self.0.len() < CACHED {
            self.0.insert(service.to_owned(), key.clone().unbind());
        }
        Ok(key)
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<spans::SpanEncoder>()?;
    m.add_class::<logs::LogEncoder>()?;
    m.add_class::<metrics::MetricEncoder>()?;
    m.add("MAX_METRIC_FIELDS", metrics::MAX_FIELDS)?;
    m.add_function(wrap_pyfunction!(request::request, m)?)?;
    m.add_function(wrap_pyfunction!(request::metric_request, m)?)?;
    Ok(())
}
