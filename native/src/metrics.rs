//! Metrics: wide events (one field per mapped metric) and narrow ones (a name and a value
//! field) of gauges and sums, with nothing else: no attributes, resource or histogram.
//!
//! The encoder's state stays the Python MetricEncoder's (`state`): its `start` (the run's
//! first point) and its `last` dict of delta series, read and written here in the same
//! order as metrics.py does, so events that go either way share one account.

use std::collections::HashMap;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use crate::json::{self, Value};
use crate::{declined, field, item, texts, time, tuple, Keys, Many};

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
    /// wide: each metric's name as field 1 of an item's packed points (metrics.py)
    labels: Vec<Vec<u8>>,
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

/// A data point's metric: the mapping's `wide[i]`, or a narrow event's name.
#[derive(Clone, Copy)]
enum Name<'a> {
    Wide(usize),
    Narrow(&'a str),
}

/// An event's data points as read: (metric, kind, the number's bytes).
type Points<'a> = Vec<(Name<'a>, u8, [u8; 9])>;

/// An event as read: its time, service and points.
type Read<'a> = (u64, &'a str, Points<'a>);

/// One data point's number: as_double 4 or as_int 6.
fn number(value: Option<Value<'_>>) -> Option<[u8; 9]> {
    let mut out = [0; 9];
    match value? {
        Value::Float(x) => {
            out[0] = 0x21;
            out[1..].copy_from_slice(&x.to_le_bytes());
        }
        Value::Int(n) => {
            out[0] = 0x31;
            out[1..].copy_from_slice(&n.to_le_bytes());
        }
        _ => return None,
    }
    Some(out)
}

impl MetricEncoder {
    /// Everything read and checked before any state is touched (a refused event leaves
    /// none), without Python objects (so without the GIL), or None.
    fn read<'a>(&self, text: &'a str) -> Option<Read<'a>> {
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
            points.push((Name::Narrow(name), kind, number(v[3])?));
        } else {
            for (i, ((_, kind), value)) in self.wide.iter().zip(&v[2..]).enumerate() {
                if matches!(value, None | Some(Value::Null)) {
                    continue;
                }
                points.push((Name::Wide(i), *kind, number(*value)?));
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

    /// The item of an event as read: the run's start and the delta series read and
    /// written in the Python encoder's state, in the order metrics.py does.
    fn emit<'py>(&mut self, py: Python<'py>, read: Read<'_>) -> PyResult<Bound<'py, PyAny>> {
        let (time, service, points) = read;
        let key = self.keys.get(py, service)?;
        let state = self.state.bind(py);
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
        let last = self.last.bind(py);
        let empty = self.empty.bind(py);
        let mut packed = Vec::with_capacity(points.len() * 48);
        let mut point = Vec::with_capacity(27);
        for (name, kind, number) in points {
            point.clear();
            if kind != GAUGE {
                let mut begin = start;
                if kind == DELTA {
                    let name = match name {
                        Name::Wide(i) => self.wide[i].0.bind(py).clone(),
                        Name::Narrow(name) => PyString::new(py, name),
                    };
                    let series = [
                        key.clone().into_any(),
                        name.into_any(),
                        empty.clone().into_any(),
                    ];
                    let series = tuple(py, series)?;
                    if let Some(previous) = last.get_item(&series)? {
                        begin = previous.extract()?;
                        last.del_item(&series)?;
                    }
                    if last.len() >= self.max_series {
                        // the least recently seen series: the dict's first, as
                        // next(iter(last)) (keys() would copy all of them)
                        let first = last.iter().next().map(|(series, _)| series);
                        if let Some(first) = first {
                            last.del_item(first)?;
                        }
                    }
                    last.set_item(series, time)?;
                }
                point.push(0x11); // start_time_unix_nano 2
                point.extend_from_slice(&begin.min(time).to_le_bytes());
            }
            point.push(0x19); // time_unix_nano 3
            point.extend_from_slice(&time.to_le_bytes());
            point.extend_from_slice(&number);
            match name {
                Name::Wide(i) => packed.extend_from_slice(&self.labels[i]),
                Name::Narrow(name) => field(&mut packed, 0x0a, name.as_bytes()),
            }
            field(&mut packed, 0x12, &point);
        }
        let packed = PyBytes::new(py, &packed).into_any();
        item(key, packed.clone(), packed)
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
    ) -> PyResult<Self> {
        let mut labels = Vec::with_capacity(wide.len());
        for (name, _) in &wide {
            let mut label = Vec::new();
            field(&mut label, 0x0a, name.bind(py).to_str()?.as_bytes());
            labels.push(label);
        }
        Ok(MetricEncoder {
            empty: PyBytes::new(py, b"").unbind(),
            labels,
            names,
            wide,
            kinds,
            narrow,
            state,
            last,
            max_series,
            fallback,
            keys: Keys::default(),
        })
    }

    /// The items (resource key, packed points, the same) of many events, as
    /// MetricEncoder(values.loads(event)) of each in turn: read without the GIL,
    /// then written in order, the events the native pass refused through the Python path
    /// in their turn (both keep the one state).
    fn many<'py>(slf: &Bound<'py, Self>, events: Vec<Bound<'py, PyAny>>) -> PyResult<Many<'py>> {
        let py = slf.py();
        let texts = texts(&events);
        let this = slf.borrow();
        let encoder: &MetricEncoder = &this;
        let read: Vec<_> = py.detach(|| texts.iter().map(|text| encoder.read((*text)?)).collect());
        let fallback = this.fallback.bind(py).clone();
        drop(this);
        let mut items = Vec::with_capacity(events.len());
        let mut failed = Vec::new();
        for (at, read) in read.into_iter().enumerate() {
            items.push(match read {
                Some(read) => slf.borrow_mut().emit(py, read)?,
                None => declined(&fallback, &events[at], at, &mut failed)?,
            });
        }
        Ok((PyList::new(py, items)?, failed))
    }
}
