import json
import random
from datetime import datetime


def produce(params: dict) -> str:
    ts: datetime = params['timestamp']
    return json.dumps({
        'payment_id': f'p-{random.getrandbits(48):012x}',
        'at': ts.isoformat(),
        'method': random.choice(['card', 'transfer', 'wallet']),
        'amount': {'value': round(random.uniform(1, 900), 2), 'currency': 'EUR'},
        'tags': random.sample(['first', 'refund', 'gift', 'promo'], k=random.randint(0, 2)),
    })
