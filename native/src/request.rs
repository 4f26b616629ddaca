//! Export{Trace,Logs}ServiceRequest from encoded items, as connector/otlp/wire.py's
//! `request` writes it: one Resource{X} per resource key in the order keys first come, its
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
