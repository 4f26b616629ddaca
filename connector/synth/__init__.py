"""Realistic traces from a service topology, for scripts and for the `topology` event plugin.

model.py     the topology file's models and the checks across them (names, loops, size)
values.py    attribute values of bounded cardinality, lognormal or fixed latencies
semconv.py   the semantic-convention attributes of each kind of span
generate.py  the model compiled once, walked per trace: span (and log) events
load.py      the file read and validated, problems named by file, line and key

In a script:

    from connector.synth import Generator, load_topology
    shop = Generator(load_topology("shop.yaml"))
    def produce(params):
        return shop.produce(params)
"""

from connector.synth.generate import SIGNALS, Generator
from connector.synth.load import TopologyError, load_topology, parse_topology
from connector.synth.model import Topology

__all__ = ["SIGNALS", "Generator", "Topology", "TopologyError", "load_topology", "parse_topology"]
