"""The connector: schedules -> a user's produce() -> Kafka, OTLP, stdout or files."""

__version__ = "0.1.0"
