"""What `validate` and `preview` ask of a kafka output beyond its config: the topic's time
limits against the records' own times (`warnings`), the schemas against the registry
(`schema_problems`), and whether an event would make a schema'd record (`schema_check`).
These talk to the broker or the registry once, with short timeouts; the run never calls
them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from connector import values
from connector.outputs.kafka import schema
from connector.outputs.kafka.client_log import strip
from connector.outputs.kafka.config import PLACEHOLDER, QUIET, Config
from connector.outputs.kafka.errors import json_reason
from connector.outputs.kafka.sink import field

__all__ = ["schema_check", "schema_problems", "warnings"]


def warnings(config: Config, first: datetime, last: datetime | None) -> list[str]:
    """Where records stamped with their own time would meet Kafka's time rules, for the
    window [first, last): retention deletes what is older, the broker refuses records too
    far ahead (message.timestamp.after.max.ms: 1 h by default in Kafka 4) or behind, and
    LogAppendTime overwrites the time. Reads the topic's configs; gives up after 5 s."""
    if config.timestamp == "now":
        return []
    where = "timestamp"
    if PLACEHOLDER.search(config.topic):
        return [f"{where}: the topic is routed by fields; its time limits were not checked"]
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient({**config.properties(), "socket.timeout.ms": 5000}, logger=QUIET)
    try:
        if config.topic not in admin.list_topics(timeout=5).topics:
            return [
                f"{where}: topic {config.topic} does not exist yet, so its time limits "
                "(the broker's defaults when it is created) were not checked"
            ]
        resource = ConfigResource(ConfigResource.Type.TOPIC, config.topic)
        found = admin.describe_configs([resource], request_timeout=5)[resource].result(timeout=5)
    except Exception as exc:  # unreachable, not allowed to read configs...
        return [
            f"{where}: Kafka at {config.bootstrap_servers} did not answer within 5 s "
            f"({strip(str(exc))}); the topic's time limits were not checked"
        ]
    values = {name: entry.value for name, entry in found.items()}
    now, out = datetime.now(UTC), []
    oldest, newest = first.astimezone(UTC), (last or now).astimezone(UTC)

    def limit(name: str) -> timedelta | None:  # -1 (or Long.MAX): no limit
        value = int(values.get(name) or -1)
        return timedelta(milliseconds=value) if 0 <= value < 2**62 else None

    topic = config.topic
    if values.get("message.timestamp.type") == "LogAppendTime":
        out.append(
            f"{where}: topic {topic} has message.timestamp.type=LogAppendTime: "
            "the broker overwrites every record's time with its own"
        )
    if (retention := limit("retention.ms")) is not None and oldest < now - retention:
        out.append(
            f"{where}: records from {oldest.isoformat()} are older than topic {topic}'s "
            f"retention.ms ({retention}): Kafka deletes them almost at once"
        )
    if (ahead := limit("message.timestamp.after.max.ms")) is not None and newest > now + ahead:
        out.append(
            f"{where}: records up to {newest.isoformat()} are more than {ahead} ahead of the "
            f"broker's clock (message.timestamp.after.max.ms): topic {topic} refuses them"
        )
    if (behind := limit("message.timestamp.before.max.ms")) is not None and oldest < now - behind:
        out.append(
            f"{where}: records from {oldest.isoformat()} are older than {behind} "
            f"(message.timestamp.before.max.ms): topic {topic} refuses them"
        )
    return out


def schema_problems(config: Config) -> tuple[list[str], list[str]]:
    """For `validate`: incompatibilities with the registered schemas, and notes."""
    return schema.problems(config)


def schema_check(config: Config):
    """For `preview`: a function event -> (reason, detail) when the schema'd record could not
    be written, None when it could; None when the output writes no schema'd records."""
    if config.schema_registry is None:
        return None
    value, key = (
        schema.Serializer(schema.load(spec), schema.subject(config, part, schema.load(spec)), 0)
        if spec
        else None
        for part, spec in (("value", config.value_schema), ("key", config.key_schema))
    )

    def check(event: str) -> tuple[str, str | None] | None:
        try:
            doc = values.loads(event)
        except orjson.JSONDecodeError as exc:
            return json_reason(exc), None
        if not isinstance(doc, dict):
            return "event is not a JSON object", None
        try:
            if key is not None:
                key.serialize(field(doc, config.key))
            if value is not None:
                value.serialize(doc)
        except LookupError as exc:
            return str(exc.args[0]), None
        except schema.Mismatch as exc:
            return exc.reason, exc.detail
        return None

    return check
