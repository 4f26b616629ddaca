import json
import random
from datetime import datetime

STATUSES = ['AUTHORIZED', 'CAPTURED', 'DECLINED']
SKUS = ['book', 'lamp', 'mug', 'tea']
CHANNELS = ['web', 'app', 'store']


def produce(params: dict) -> str:
    ts: datetime = params['timestamp']
    items = [
        {'sku': random.choice(SKUS), 'quantity': random.randint(1, 3),
         'price': {'currency': 'EUR', 'units': random.randint(100, 5000)}}
        for _ in range(random.randint(1, 3))
    ]
    method = random.choice([
        {'card_last4': f'{random.randint(0, 9999):04d}'},
        {'iban': f'DE{random.getrandbits(64):020d}'},
        {'cash': True},
    ])
    return json.dumps({
        'payment_id': f'p-{random.getrandbits(48):012x}',
        'customer_id': random.randint(1, 50),
        'created_at': ts.isoformat(),  # google.protobuf.Timestamp
        'status': random.choice(STATUSES),  # an enum, by name
        'items': items,  # a repeated nested message
        'labels': {'channel': random.choice(CHANNELS)},  # a map
        **method,  # one field of the oneof
        'total': {'currency': 'EUR',
                  'units': sum(i['quantity'] * i['price']['units'] for i in items)},
    })
