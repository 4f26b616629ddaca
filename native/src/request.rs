//! Export requests from encoded items, as connector/otlp/wire.py's `request` and
//! MetricEncoder.request write them: one Resource{X} per resource key in the order keys
//! first come. Request{resource_X 1}; ResourceX{resource 1, scope_X 2}; ScopeX{scope 1,
//! items 2}.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};

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
/// come), each name's data points framed in order. `parts(name)` gives the Metric's head
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
    // per resource: its key, its names' index, each name and its framed points
    type Metrics<'py> = (Bound<'py, PyDict>, Vec<(Bound<'py, PyAny>, Vec<u8>)>);
    let mut groups: Vec<(Bound<'py, PyAny>, Metrics<'py>)> = Vec::new();
    for item in items.try_iter()? {
        let item = item?.cast_into::<PyTuple>()?;
        let at = slot(&index, item.get_item(0)?, &mut groups, || {
            (PyDict::new(py), Vec::new())
        })?;
        let (names, metrics) = &mut groups[at].1;
        for point in item.get_item(1)?.try_iter()? {
            let point = point?.cast_into::<PyTuple>()?;
            let Ok(bytes) = point.get_item(1)?.cast_into::<PyBytes>() else {
                return Ok(None);
            };
            let m = slot(names, point.get_item(0)?, metrics, Vec::new)?;
            field(&mut metrics[m].1, 0x0a, bytes.as_bytes()); // data_points 1
        }
    }
    let mut out = Vec::new();
    let (mut scoped, mut body) = (Vec::new(), Vec::new());
    for (key, (_, metrics)) in groups {
        scoped.clear();
        scoped.extend_from_slice(scope);
        for (name, mut data) in metrics {
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
