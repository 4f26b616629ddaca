"""The topology model from a script: the shop's traces, plus a field of the script's own on
every root span (here, which A/B variant served the request). The model is loaded once;
`--seed` seeds `random`, and the generator's own seed is drawn from it."""

import json
import random
from pathlib import Path

from connector.synth import Generator, load_topology

SHOP = Generator(load_topology(Path(__file__).with_name('shop.yaml')),
                 random.Random(random.getrandbits(64)))


def produce(params: dict) -> list[str]:
    events = SHOP.trace(params['timestamp'])
    variant = random.choice(['a', 'b'])
    for span in events:
        if span['parent_span_id'] is None:
            span['attributes']['app.variant'] = variant
    return [json.dumps(e) for e in events]
