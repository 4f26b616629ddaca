"""The connector: schedules -> a user's produce() -> Kafka, OTLP, stdout or files.

cli.py, run.py, summary.py   the command line: validate / preview, run, the summary
identity.py                  replica and worker: one value, read once by the CLI
config.py, fields.py         YAML -> validated models; shared field types
yaml_limits.py               the YAML loader that bounds a config, and its limits
inputs/                      cron and rate timestamps; schedule.py: the run's schedule
events/                      the user's script
outputs/                     the output contract, the handles, the plugins
otlp/                        events -> OTLP (traces, logs, metrics) and the OTLP sender
pipeline.py                  the loop: schedule -> script -> batches -> handles
options.py                   RunOptions; the script loaded once, seeded
anchoring.py, snapshot.py    the pipeline's schedule anchored; its RunStats snapshot
settling.py                  the pipeline's checkpoints: resume (replay), settle
pacing.py, limits.py         live mode's clock waits; --max-events and --duration
checkpoint.py                --checkpoint: position stores, the file, resume
trace_check.py               check_traces: trace integrity
workers.py                   --workers N
ledger.py                    a worker's hand-offs in shared memory; a dead worker's accounts
clock.py, stats.py           the run's clock; RunStats, what every reader reads
metrics.py, progress.py      /metrics and health; the progress line
logs.py, testing.py          log setup and redaction; test doubles for users and tests
"""

__version__ = "0.1.0"
