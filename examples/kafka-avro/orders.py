import json
import random
from datetime import datetime

STATUSES = ['PLACED', 'PAID', 'SHIPPED', 'CANCELLED']
CITIES = ['Berlin', 'Lisbon', 'Osaka', 'Toronto']


def produce(params: dict) -> str:
    ts: datetime = params['timestamp']
    customer = random.randint(1, 50)
    return json.dumps({
        'order_id': f'o-{random.getrandbits(48):012x}',
        'customer_id': customer,
        'created_at': ts.isoformat(),  # timestamp-millis: ISO-8601 in, epoch ms on the wire
        'status': random.choice(STATUSES),  # an Avro enum
        'amount': round(random.uniform(5, 500), 2),
        'shipping': {  # a nested record
            'city': random.choice(CITIES),
            'express': random.random() < 0.2,
        },
        'coupon': random.choice([None, None, 'WELCOME10']),  # union ["null", "string"]
    })
