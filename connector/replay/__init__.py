"""Replay recorded traffic: a recording (a source) played again as the run's events,
re-timed onto the run's schedule (or onto its own gaps, the `recorded` input), with
fresh ids and loops on request.

config.py     `event: replay:` settings: one source, new_ids, loop
records.py    Record / BadRecord, and the Source protocol every source implements
files.py      a file as a stream of bounded lines (gzip by its magic bytes)
text.py       jsonl and lines (a regex + strptime timestamp) sources
otlp_json.py  OTLP JSON requests -> traces, logs, metric points as the connector's events
kafka.py      a topic range: partitions, offsets or times, read_committed, any encoding
sources.py    the source a config names
traces.py     group_traces: a JSON source's consecutive spans of one trace as one record
times.py      recorded times read and rewritten (ISO-8601, epoch numbers, nanoseconds)
ids.py        new_ids: old id -> fresh id by a keyed hash (consistent, seeded, per loop)
player.py     the run's event step: one record per tick; the ticks end with the recording
recorded.py   the `recorded` input: ticks at the recorded gaps divided by `speed`
wiring.py     the config's checks and links, and the script the run calls
"""
