"""JSON Schema records: a validator built once per subject, and a failure named by the
schema's own property names, so that its reason stays a bounded label (the event's own
keys and values go to the detail)."""

from __future__ import annotations

from typing import Any

__all__ = ["explain", "property_names", "validator"]


def validator(parsed: Any) -> Any:
    """The validator of the schema's own draft (`$schema`, else the latest)."""
    from jsonschema.validators import validator_for

    return validator_for(parsed)(parsed)


def property_names(schema: Any) -> set[str]:
    """Every name under a `properties` anywhere in the schema."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "properties" and isinstance(value, dict):
                    names.update(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(schema)
    return names


def explain(check: Any, value: Any, names: set[str]) -> tuple[str, str]:
    """Why `value` fails: the path of schema names to the failing field (for the reason),
    and where and what, in the event's own terms (for the detail)."""
    from jsonschema.exceptions import best_match

    error = best_match(check.iter_errors(value))
    parts = []
    for part in error.absolute_path:  # names from the schema only: a bounded reason
        if not isinstance(part, str) or part not in names:
            break
        parts.append(part)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = next((n for n in error.validator_value if n not in error.instance), None)
        if isinstance(missing, str) and missing in names:
            parts.append(missing)
    where = "/".join(map(str, error.absolute_path))
    return ".".join(parts), f"at '{where}': {error.message}"
