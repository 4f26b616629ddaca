//! Export requests from encoded items, as connector/otlp/wire.py's `request` and
//! MetricEncoder.request write them: one Resource{X} per resource key in the order keys
//! first come. Request{resource_X 1}; ResourceX{resource 1, scope_X 2}; ScopeX{scope 1,
//! items 2}.

use std::collections::HashMap;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString, PyTuple};

use crate::field;

/// `resource(key)` gives a key's Resource field (wire.resource_field, cached there);
/// `scope` is the ScopeX's scope field.
#[pyfunction]
pub fn request<'py>(
    items: &Bound<'py, PyAny>,
    resource: &Bound<'py, PyAny>,
    scope: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let py = items.py();
    let index = PyDict::new(py);
    let mut groups: Vec<(Bound<'py, PyAny>, Vec<u8>)> = Vec::new();
    for item in items.try_iter()? {
        let item = item?.cast_into::<PyTuple>()?;
        let payload = item.get_item(2)?;
        let at = slot(&index, item.get_item(0)?, &mut groups, Vec::new)?;
        field(
            &mut groups[at].1,
            0x12,
            payload.cast::<PyBytes>()?.as_bytes(),
        );
    }
    let mut out = Vec::new();
    let mut scoped = Vec::new();
    for (key, framed) in groups {
        scoped.clear();
        scoped.extend_from_slice(scope);
        scoped.extend_from_slice(&framed);
        resource_group(&mut out, resource, key, &scoped)?;
    }
    Ok(PyBytes::new(py, &out))
}

/// ExportMetricsServiceRequest from metric items, as MetricEncoder.request writes it: one
/// ResourceMetrics per resource key, one Metric per name (both in the order they first
/// come), each name's data points framed in order. An item's points are packed (name 1,
/// point 2) pairs, or a tuple of (name, point) pairs. `parts(name)` gives the Metric's head
/// (name, unit), its data's field tag and tail (temporality, monotonic). None when a point
/// is not bytes (a histogram's observation: the Python request aggregates those).
#[pyfunction]
pub fn metric_request<'py>(
    items: &Bound<'py, PyAny>,
    parts: &Bound<'py, PyAny>,
    resource: &Bound<'py, PyAny>,
    scope: &[u8],
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let py = items.py();
    let index = PyDict::new(py);
    let mut groups: Vec<(Bound<'py, PyAny>, Metrics)> = Vec::new();
    for item in items.try_iter()? {
        let item = item?.cast_into::<PyTuple>()?;
        let at = slot(&index, item.get_item(0)?, &mut groups, Default::default)?;
        let metrics = &mut groups[at].1;
        let points = item.get_item(1)?;
        if let Ok(packed) = points.cast::<PyBytes>() {
            let mut rest = packed.as_bytes();
            while !rest.is_empty() {
                let (Some(name), Some(point)) = (take(&mut rest, 0x0a), take(&mut rest, 0x12))
                else {
                    return Err(PyValueError::new_err("malformed packed metric points"));
                };
                add_point(metrics, name, point);
            }
            continue;
        }
        for point in points.try_iter()? {
            let point = point?.cast_into::<PyTuple>()?;
            let Ok(bytes) = point.get_item(1)?.cast_into::<PyBytes>() else {
                return Ok(None);
            };
            let name = point.get_item(0)?.cast_into::<PyString>()?;
            add_point(metrics, name.to_str()?.as_bytes(), bytes.as_bytes());
        }
    }
    let mut out = Vec::new();
    let (mut scoped, mut body) = (Vec::new(), Vec::new());
    for (key, (_, metrics)) in groups {
        scoped.clear();
        scoped.extend_from_slice(scope);
        for (name, mut data) in metrics {
            let name = std::str::from_utf8(&name)?;
            let (head, tag, tail): (Bound<PyBytes>, u8, Bound<PyBytes>) =
                parts.call1((name,))?.extract()?;
            data.extend_from_slice(tail.as_bytes());
            body.clear();
            body.extend_from_slice(head.as_bytes());
            field(&mut body, tag, &data);
            field(&mut scoped, 0x12, &body); // metrics 2
        }
        resource_group(&mut out, resource, key, &scoped)?;
    }
    Ok(Some(PyBytes::new(py, &out)))
}

/// A resource's metrics: each name's index, and (name, its framed data points).
type Metrics = (HashMap<Vec<u8>, usize>, Vec<(Vec<u8>, Vec<u8>)>);

/// A data point framed (data_points 1) under its metric's name, a new name last.
fn add_point((index, metrics): &mut Metrics, name: &[u8], point: &[u8]) {
    let at = match index.get(name) {
        Some(&at) => at,
        None => {
            index.insert(name.to_vec(), metrics.len());
            metrics.push((name.to_vec(), Vec::new()));
            metrics.len() - 1
        }
    };
    field(&mut metrics[at].1, 0x0a, point);
}

/// The payload of the length-delimited field `tag` at the front of `rest`, which moves
/// past it; None when the front is not such a field.
fn take<'a>(rest: &mut &'a [u8], tag: u8) -> Option<&'a [u8]> {
    let (&first, mut bytes) = rest.split_first()?;
    if first != tag {
        return None;
    }
    let (mut size, mut shift) = (0usize, 0);
    loop {
        let (&byte, more) = bytes.split_first()?;
        bytes = more;
        size |= usize::from(byte & 0x7f).checked_shl(shift)?;
        if byte < 0x80 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    let payload = bytes.get(..size)?;
    *rest = &bytes[size..];
    Some(payload)
}

/// The index in `entries` of `key`'s entry, a new one (`make`) when the key is new; the
/// index is a dict, so keys are grouped by Python's equality, as the Python requests do.
fn slot<'py, T>(
    index: &Bound<'py, PyDict>,
    key: Bound<'py, PyAny>,
    entries: &mut Vec<(Bound<'py, PyAny>, T)>,
    make: impl FnOnce() -> T,
) -> PyResult<usize> {
    if let Some(at) = index.get_item(&key)? {
        return at.extract();
    }
    index.set_item(&key, entries.len())?;
    entries.push((key, make()));
    Ok(entries.len() - 1)
}

/// ResourceX{resource 1 (from `resource(key)`), scope_X 2} as field 1 of the request.
fn resource_group(
    out: &mut Vec<u8>,
    resource: &Bound<'_, PyAny>,
    key: Bound<'_, PyAny>,
    scoped: &[u8],
) -> PyResult<()> {
    let mut group = resource
        .call1((key,))?
        .cast_into::<PyBytes>()?
        .as_bytes()
        .to_vec();
    field(&mut group, 0x12, scoped);
    field(out, 0x0a, &group);
    Ok(())
}
