import json
import random
from datetime import datetime


def produce(params: dict) -> str:
    ts: datetime = params['timestamp']
    tags: tuple[str, ...] = params['tags']
    if 'hourly-summary' in tags:
        return json.dumps({
            'timestamp': ts.isoformat(),
            'type': 'summary',
            'total_requests': random.randint(1000, 5000),
            'error_rate': round(random.uniform(0.01, 0.1), 3),
            'p99_latency_ms': random.randint(50, 500),
        })
    return json.dumps({
        'timestamp': ts.isoformat(),
        'type': 'request',
        'method': random.choice(['GET', 'POST', 'PUT', 'DELETE']),
        'path': random.choice(['/api/users', '/api/orders', '/api/products']),
        'status': random.choice([200, 200, 200, 201, 400, 404, 500]),
    })
