"""The suite's helpers, one home each (no tests here; no test module imports another):

- cli.py: `run_cli`, `Run` (the connector in the background), `wait_for`, ROOT, EXAMPLES
- summary.py: the run summary parsed (`Summary`)
- accounts.py: the one accounts checker (`check_accounts`) and the dead letters
- metrics.py: the Prometheus scraper (`scrape`, `samples`, `metric`, `http_status`)
- kafka.py: the shared broker, `read_topic`, `PrivateKafka`
- jaeger.py: the shared Jaeger, traces read back, `PrivateJaeger`, `TcpProxy` (down, stall)
- collector.py: a Collector of the test's own; schema_registry.py: the registry
- otlp.py: OTLP/JSON read back from a Collector's kafka exporter
- faults.py: the fault tests' event script, config and readers of ids
- fuzz.py: hostile values, the CLI run forked or measured, its invariants
- lock.py: uv and what the lock holds; hypothesis_profiles.py: the fuzz budgets
- fixtures.py: the fixtures; parts.py: scheduling and the time of each part
"""
