"""Events: what is made of each timestamp.

config.py    `event:`: a script, a topology, or a replay (which a script may transform)
script.py    load the script once, call produce(), check what it returns, count its errors
topology.py  the topology plugin: spans, logs and RED metrics from a model (connector/synth/)
"""
