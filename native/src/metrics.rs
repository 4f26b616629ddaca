//! Metrics: wide events (one field per mapped metric) and narrow ones (a name and a value
//! field) of gauges and sums, with nothing else: no attributes, resource or histogram.
//!
//! The encoder's state stays the Python MetricEncoder's (`state`): its `start` (the run's
//! first point) and its `last` dict of delta series, read and written here in the same
//! order as metrics.py does, so events that go either way share one account.

use std::collections::HashMap;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use crate::json::{self, Value};
use crate::{fall_back, item, text_of, time, tuple, Keys};

/// The fields an event of this encoder may have: timestamp, service and the metrics.
pub const MAX_FIELDS: usize = 16;

// a metric's kind, as compiled.py numbers them (1: a cumulative sum)
const GAUGE: u8 = 0;
const DELTA: u8 = 2; // a sum
const HISTOGRAM: u8 = 3; // either kind: the Python path's

#[pyclass(module = "connector.otlp._native")]
pub struct MetricEncoder {
    /// timestamp, service, then the metric fields (wide) or the name and value fields
    names: Vec<String>,
    /// wide: each metric field's name and kind, in the mapping's order
    wide: Vec<(Py<PyString>, u8)>,
    /// narrow: the kind of each listed metric name (others are gauges)
    kinds: HashMap<String, u8>,
    narrow: bool,
    state: Py<PyAny>,
    last: Py<PyDict>,
    max_series: usize,
    fallback: Py<PyAny>,
    keys: Keys,
    empty: Py<PyBytes>, // a series' attributes: none on this path
}

/// An event's data points as read: (metric name, kind, the number's bytes).
type Points = Vec<(Py<PyString>, u8, Vec<u8>)>;

/// One data point's number: as_double 4 or as_int 6.
fn number(value: Option<Value<'_>>, out: &mut Vec<u8>) -> Option<()> {
    match value? {
        Value::Float(x) => {
            out.push(0x21);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Value::Int(n) => {
            out.push(0x31);
            out.extend_from_slice(&n.to_le_bytes());
        }
        _ => return None,
    }
    Some(())
}

impl MetricEncoder {
    /// Everything read and checked before any state is touched (a refused event leaves
    /// none): (time, service, the points' (name, kind, number bytes)), or None.
    fn read<'a>(&self, py: Python<'_>, text: &'a str) -> Option<(u64, &'a str, Points)> {
        let mut v = [None; MAX_FIELDS];
        let v = v.get_mut(..self.names.len())?; // compiled.py builds none with more
        json::read_object(text, &self.names, v)?;
        let time = match v[0]? {
            Value::Str(s) => time::nanos(s, true)?,
            Value::Int(n) => u64::try_from(n).ok()?.checked_mul(1_000_000_000)?,
            _ => return None,
        };
        let service = match v[1] {
            None | Some(Value::Null) | Some(Value::Str("")) => "unknown_service",
            Some(Value::Str(s)) => s,
            _ => return None,
        };
        let mut points = Vec::with_capacity(self.wide.len().max(1));
        if self.narrow {
            let name = match v[2]? {
                Value::Str(s) if !s.is_empty() => s,
                _ => return None,
            };
            let kind = self.kinds.get(name).copied().unwrap_or(GAUGE);
            let mut bytes = Vec::with_capacity(9);
            number(v[3], &mut bytes)?;
            points.push((PyString::new(py, name).unbind(), kind, bytes));
        } else {
            for ((name, kind), value) in self.wide.iter().zip(&v[2..]) {
                if matches!(value, None | Some(Value::Null)) {
                    continue;
                }
                let mut bytes = Vec::with_capacity(9);
                number(*value, &mut bytes)?;
                points.push((name.clone_ref(py), *kind, bytes));
            }
            if points.is_empty() {
                return None;
            }
        }
        if points.iter().any(|(_, kind, _)| *kind == HISTOGRAM) {
            return None;
        }
        Some((time, service, points))
    }
}

#[pymethods]
impl MetricEncoder {
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        names: Vec<String>,
        wide: Vec<(Py<PyString>, u8)>,
        kinds: HashMap<String, u8>,
        narrow: bool,
        state: Py<PyAny>,
        last: Py<PyDict>,
        max_series: usize,
        fallback: Py<PyAny>,
        py: Python<'_>,
    ) -> Self {
        MetricEncoder {
            empty: PyBytes::new(py, b"").unbind(),
            names,
            wide,
            kinds,
            narrow,
            state,
            last,
            max_series,
            fallback,
            keys: Keys::default(),
        }
    }

    /// The item (resource key, ((metric name, NumberDataPoint bytes), ...), the points'
    /// bytes) of one event, as MetricEncoder(values.loads(event)).
    #[pyo3(name = "from_text")]
    fn encode<'py>(
        mut slf: PyRefMut<'py, Self>,
        event: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = event.py();
        let Some((time, service, points)) = text_of(event).and_then(|text| slf.read(py, text))
        else {
            return fall_back(slf, |this| &this.fallback, event);
        };
        let this = &mut *slf;
        let key = this.keys.get(py, service)?;
        let state = this.state.bind(py);
        let start: u64 = match state
            .getattr(intern!(py, "start"))?
            .extract::<Option<u64>>()?
        {
            Some(start) => start,
            None => {
                state.setattr(intern!(py, "start"), time)?;
                time
            }
        };
        let last = this.last.bind(py);
        let empty = this.empty.bind(py);
        let mut size = Vec::with_capacity(points.len() * 28);
        let mut out = Vec::with_capacity(points.len());
        for (name, kind, number) in points {
            let at = size.len();
            if kind != GAUGE {
                let mut begin = start;
                if kind == DELTA {
                    let series = [
                        key.clone().into_any(),
                        name.bind(py).clone().into_any(),
                        empty.clone().into_any(),
                    ];
                    let series = tuple(py, series)?;
                    if let Some(previous) = last.get_item(&series)? {
                        begin = previous.extract()?;
                        last.del_item(&series)?;
                    }
                    if last.len() >= this.max_series {
                        // the least recently seen series: the dict's first, as
                        // next(iter(last)) (keys() would copy all of them)
                        let first = last.iter().next().map(|(series, _)| series);
                        if let Some(first) = first {
                            last.del_item(first)?;
                        }
                    }
                    last.set_item(series, time)?;
                }
                size.push(0x11); // start_time_unix_nano 2
                size.extend_from_slice(&begin.min(time).to_le_bytes());
            }
            size.push(0x19); // time_unix_nano 3
            size.extend_from_slice(&time.to_le_bytes());
            size.extend_from_slice(&number);
            let point = PyBytes::new(py, &size[at..]);
            out.push(tuple(py, [name.into_bound(py).into_any(), point.into_any()])?.into_any());
        }
        let points = tuple(py, out)?.into_any();
        item(key, points, PyBytes::new(py, &size).into_any())
    }
}
