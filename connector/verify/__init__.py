"""`connector verify`: read back what a run's manifest says each output acknowledged:
kafka.py (records by offset and hash), traces.py (Jaeger or Tempo by trace id), files.py
(lines by offset and hash), report.py (the table, --json, the progress line), cli.py."""
