import json
import random
from datetime import datetime

SERVICES = ['api-gateway', 'auth-service', 'order-service', 'payment-service']


def produce(params: dict) -> list[str]:
    ts: datetime = params['timestamp']
    events = []
    for service in SERVICES:
        event = {
            'timestamp': ts.isoformat(),
            'service': service,
            'cpu_percent': round(random.uniform(5, 95), 1),
            'memory_mb': random.randint(128, 2048),
            'request_count': random.randint(0, 500),
        }
        events.append(json.dumps(event))
    return events
