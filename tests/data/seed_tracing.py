"""The seed document's tracing example exactly as written, parent-id defect included:
children are handed a fresh id as their parent, and the parent then takes another."""

import json
import random
from datetime import datetime, timedelta
from uuid import uuid4

TOPOLOGY = {
    'api-gateway': ['auth-service', 'order-service'],
    'auth-service': ['user-db'],
    'order-service': ['inventory-service', 'payment-service'],
    'inventory-service': ['product-db'],
    'payment-service': ['payment-provider'],
    'user-db': [],
    'product-db': [],
    'payment-provider': [],
}
BASE_LATENCY = {  # ms
    'api-gateway': 2, 'auth-service': 5,
    'order-service': 3, 'inventory-service': 4,
    'payment-service': 8, 'user-db': 10,
    'product-db': 8, 'payment-provider': 50,
}
ERROR_RATE = {'payment-provider': 0.05, 'product-db': 0.02}
METHODS = ['POST /orders', 'GET /orders', 'POST /checkout', 'GET /products']


def _make_span(trace_id, parent_id, service, start, duration_ms, error, method) -> str:
    span = {
        'trace_id': trace_id,
        'span_id': uuid4().hex[:16],
        'parent_span_id': parent_id,
        'service': service,
        'operation': method,
        'start_time': start.isoformat(),
        'duration_ms': round(duration_ms, 2),
        'status': 'ERROR' if error else 'OK',
    }
    if error:
        span['error_message'] = f'{service}: internal error'
    return json.dumps(span)


def _traverse(service, trace_id, parent_id, start, method):
    """Walk the service graph depth-first, collecting spans."""
    spans = []
    own_latency = max(1, random.gauss(BASE_LATENCY[service], 2))
    cursor = start + timedelta(milliseconds=own_latency * 0.3)
    child_error = False
    for downstream in TOPOLOGY[service]:
        child_spans, child_dur, errored = _traverse(
            downstream, trace_id, uuid4().hex[:16], cursor, method,
        )
        spans.extend(child_spans)
        cursor += timedelta(milliseconds=child_dur)
        child_error = child_error or errored
    total = (cursor - start).total_seconds() * 1000 + own_latency * 0.7
    is_error = child_error or (random.random() < ERROR_RATE.get(service, 0))
    spans.append(_make_span(trace_id, parent_id, service, start, total, is_error, method))
    return spans, total, is_error


def produce(params: dict) -> list[str]:
    ts: datetime = params['timestamp']
    trace_id = uuid4().hex
    method = random.choice(METHODS)
    spans, _, _ = _traverse('api-gateway', trace_id, None, ts, method)
    return spans
