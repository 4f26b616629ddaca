"""Correlated signals: one produce() call makes a checkout trace, a log line for each of its
spans (the same trace and span ids, so a log joins its span), and a batch-consumer span in
a trace of its own that links back to the span that queued the order.

Every event says what it is in `signal` ("span" or "log"); the config's outputs route on it
with `when`. The field stays in the event (it becomes an attribute of the span or record).
"""

import json
import random
from datetime import datetime, timedelta

# (service, operation, parent index, start offset ms, duration ms, log level, log message)
CHECKOUT = [
    ('api-gateway', 'POST /checkout', None, 0, 40, 'INFO', 'checkout requested'),
    ('auth-service', 'verify token', 0, 2, 6, 'DEBUG', 'token verified'),
    ('order-service', 'create order', 0, 10, 25, 'INFO', 'order created'),
    ('payment-service', 'charge card', 2, 14, 15, 'INFO', 'card charged'),
    ('order-service', 'publish order-events', 2, 31, 3, 'INFO', 'order queued for fulfilment'),
]
FAILED_PAYMENT = 0.05


def _id(bits: int) -> str:
    return f'{random.getrandbits(bits):0{bits // 4}x}'  # from `random`: --seed repeats a run


def _ms(ts: datetime, ms: float) -> str:
    return (ts + timedelta(milliseconds=ms)).isoformat()


def produce(params: dict) -> list[str]:
    ts: datetime = params['timestamp']
    trace_id, ids, events = _id(128), [_id(64) for _ in CHECKOUT], []
    failed = random.random() < FAILED_PAYMENT
    order = f'o-{_id(32)}'
    for k, (service, operation, parent, start, duration, level, message) in enumerate(CHECKOUT):
        error = failed and service in ('payment-service', 'order-service', 'api-gateway')
        error = error and operation != 'publish order-events'
        if failed and operation == 'publish order-events':
            continue  # a failed payment queues nothing
        span = {
            'signal': 'span', 'trace_id': trace_id, 'span_id': ids[k],
            'parent_span_id': None if parent is None else ids[parent],
            'service': service, 'operation': operation,
            'start_time': _ms(ts, start), 'duration_ms': duration,
            'status': 'ERROR' if error else 'OK', 'order_id': order,
        }
        if error:
            span['error_message'] = 'card declined'
        log = {
            'signal': 'log', 'timestamp': _ms(ts, start + duration / 2),
            'level': 'ERROR' if error else level,
            'message': 'card declined' if error else message,
            'service': service, 'trace_id': trace_id, 'span_id': ids[k], 'order_id': order,
        }
        events += [json.dumps(span), json.dumps(log)]
    if not failed:  # the fulfilment worker takes the order from the queue, in its own trace
        batch_trace, batch_span = _id(128), _id(64)
        events.append(json.dumps({
            'signal': 'span', 'trace_id': batch_trace, 'span_id': batch_span,
            'parent_span_id': None, 'service': 'fulfilment-worker',
            'operation': 'process order-events batch', 'start_time': _ms(ts, 500),
            'duration_ms': 12, 'status': 'OK', 'kind': 'CONSUMER', 'order_id': order,
            'links': [{'trace_id': trace_id, 'span_id': ids[4],
                       'attributes': {'messaging.operation': 'receive'}}],
            'events': [{'name': 'order picked', 'time': _ms(ts, 505),
                        'attributes': {'order_id': order}}],
        }))
        events.append(json.dumps({
            'signal': 'log', 'timestamp': _ms(ts, 506), 'level': 'INFO',
            'message': 'order sent to the warehouse', 'service': 'fulfilment-worker',
            'trace_id': batch_trace, 'span_id': batch_span, 'order_id': order,
        }))
    return events
