//! Export requests from encoded items. Export{Trace,Logs}ServiceRequest as
//! connector/otlp/wire.py's `request` writes it: one Resource{X} per resource key in the order keys first come, its
//! items framed in order. Request{resource_X 1}; ResourceX{resource 1, scope_X 2};
//! ScopeX{scope 1, items 2}.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};

use crate::{field, varint};

/// `resource(key)` gives a key's Resource field (wire.resource_field, cached there);
/// `scope` is the ScopeX's scope field.
#[pyfunction]
pub fn request<'py>(
    items: &Bound<'py, PyAny>,
    resource: &Bound<'py, PyAny>,
    scope: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let py = items.py();
    let index = PyDict::new(py); // key -> its group: Python's equality, as a dict groups
    let mut groups: Vec<(Bound<'py, PyAny>, Vec<u8>)> = Vec::new();
    for item in items.try_iter()? {
        let item = item?.cast_into::<PyTuple>()?;
        let key = item.get_item(0)?;
        let payload = item.get_item(2)?;
        let payload = payload.cast::<PyBytes>()?.as_bytes();
        let at = match index.get_item(&key)? {
            Some(at) => at.extract::<usize>()?,
            None => {
                index.set_item(&key, groups.len())?;
                groups.push((key, Vec::new()));
                groups.len() - 1
            }
        };
        let framed = &mut groups[at].1;
        framed.push(0x12);
        varint(framed, payload.len());
        framed.extend_from_slice(payload);
    }
    let mut out = Vec::new();
    let (mut scoped, mut resourced) = (Vec::new(), Vec::new());
    for (key, framed) in groups {
        scoped.clear();
        scoped.extend_from_slice(scope);
        scoped.extend_from_slice(&framed);
        resourced.clear();
        resourced.extend_from_slice(resource.call1((key,))?.cast::<PyBytes>()?.as_bytes());
        field(&mut resourced, 0x12, &scoped);
        field(&mut out, 0x0a, &resourced);
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
    type Metrics<'py> = Vec<(Bound<'py, PyAny>, Vec<u8>)>;
    let mut groups: Vec<(Bound<'py, PyAny>, Bound<'py, PyDict>, Metrics<'py>)> = Vec::new();
    for item in items.try_iter()? {
        let item = item?.cast_into::<PyTuple>()?;
        let key = item.get_item(0)?;
        let at = match index.get_item(&key)? {
            Some(at) => at.extract::<usize>()?,
            None => {
                index.set_item(&key, groups.len())?;
                groups.push((key, PyDict::new(py), Vec::new()));
                groups.len() - 1
            }
        };
        let (_, names, metrics) = &mut groups[at];
        for point in item.get_item(1)?.try_iter()? {
            let point = point?.cast_into::<PyTuple>()?;
            let name = point.get_item(0)?;
            let Ok(bytes) = point.get_item(1)?.cast_into::<PyBytes>() else {
                return Ok(None);
            };
            let m = match names.get_item(&name)? {
                Some(m) => m.extract::<usize>()?,
                None => {
                    names.set_item(&name, metrics.len())?;
                    metrics.push((name, Vec::new()));
                    metrics.len() - 1
                }
            };
            field(&mut metrics[m].1, 0x0a, bytes.as_bytes()); // data_points 1
        }
    }
    let mut out = Vec::new();
    let (mut scoped, mut resourced, mut body) = (Vec::new(), Vec::new(), Vec::new());
    for (key, _, metrics) in groups {
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
        resourced.clear();
        resourced.extend_from_slice(resource.call1((key,))?.cast::<PyBytes>()?.as_bytes());
        field(&mut resourced, 0x12, &scoped);
        field(&mut out, 0x0a, &resourced);
    }
    Ok(Some(PyBytes::new(py, &out)))
}
