"""The flow document `maestra.flow/1`: the one format for import, export, the API
and storage (SPEC §11).

Two layers of checking, on purpose:
- `parse_document` refuses a *malformed* document (not JSON, wrong JSON types,
  unknown format). Such a document cannot be stored at all (API: 400).
- `flows.document.validate.validate_document` finds *semantic* errors in a well-formed
  document (missing start node, unknown template, ...). Such a document is saved
  as an invalid draft with its errors.

The document is never rewritten: defaults are applied when reading it
(`document_settings`, `graph_rows`), so export returns exactly what came in.

The small value formats the document uses (durations, time zones, ISO
datetimes) are checked by the `*_problem` helpers of flows/document/fields.py.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flows.document.fields import (
    LAUNCH_LIMIT_MODES,
    MAX_PORT_LENGTH,
    datetime_problem,
    duration_problem,
    is_int,
    timezone_problem,
)
from flows.errors import DocumentError
from maestra.durations import parse_duration
from maestra.jsonvalues import json_problems
from maestra.sql import MAX_INT

FORMAT = "maestra.flow/1"

# Column sizes of Flow/Node/Edge: a longer value could not be stored, so it is
# a malformed document rather than a validation error.
MAX_NAME_LENGTH = 200
MAX_KEY_LENGTH = 100
MAX_KIND_LENGTH = 20
MAX_TITLE_LENGTH = 200

KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")
DEFAULT_TIMEZONE = "UTC"
DEFAULT_LAUNCH_LIMIT_MODE = "every_time"

_TOP_LEVEL_KEYS = frozenset(
    {
        "format",
        "name",
        "description",
        "timezone",
        "launch_limit",
        "schedule",
        "goal",
        "exit",
        "nodes",
        "edges",
    }
)
_NODE_KEYS = frozenset({"key", "kind", "title", "config", "position"})
_EDGE_KEYS = frozenset({"from", "to", "port"})
_LAUNCH_LIMIT_KEYS = frozenset({"mode", "period", "max_total"})
_SCHEDULE_KEYS = frozenset({"start_at", "end_at"})
# Goal and exit criteria (SPEC §13); their meaning is judged by flows/engine/goals.py.
_GOAL_KEYS = frozenset({"event_type", "filter", "window", "value_field"})
_EXIT_KEYS = frozenset({"event_type", "filter"})


# --- Parsing ---------------------------------------------------------------------


def parse_document(data: dict | str | bytes) -> dict:
    """Check that `data` (parsed JSON or JSON text) is a well-formed
    maestra.flow/1 document and return it unchanged. Raises DocumentError
    listing every problem found."""
    if isinstance(data, (str, bytes, bytearray)):
        try:
            data = json.loads(data, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as error:
            raise DocumentError([{"field": "", "message": f"not valid JSON: {error}"}]) from None
    if not isinstance(data, dict):
        raise DocumentError([{"field": "", "message": "a flow document must be a JSON object"}])

    errors: list[dict] = []

    def add(field: str, message: str) -> None:
        errors.append({"field": field, "message": message})

    _check_json_values(data, "", add)
    for key in data:
        if key not in _TOP_LEVEL_KEYS:
            add(str(key), "unknown field")

    if "format" not in data:
        add("format", f'missing; expected "{FORMAT}"')
    elif data["format"] != FORMAT:
        add("format", f'unknown format {data["format"]!r}; expected "{FORMAT}"')

    if "name" not in data:
        add("name", "missing; a flow needs a name")
    else:
        _check_string(data["name"], "name", add, max_length=MAX_NAME_LENGTH, non_empty=True)
    if "description" in data:
        _check_string(data["description"], "description", add)
    if "timezone" in data:
        _check_string(data["timezone"], "timezone", add)

    _parse_launch_limit(data.get("launch_limit"), add)
    _parse_schedule(data.get("schedule"), add)
    _parse_criteria(data.get("goal"), "goal", _GOAL_KEYS, add)
    _parse_criteria(data.get("exit"), "exit", _EXIT_KEYS, add)

    for name, parse_item in (("nodes", _parse_node), ("edges", _parse_edge)):
        items = data.get(name, [])
        if not isinstance(items, list):
            add(name, f"must be a list of {name}")
        else:
            for index, item in enumerate(items):
                parse_item(item, f"{name}.{index}", add)

    if errors:
        raise DocumentError(errors)
    return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def _check_json_values(value: Any, path: str, add) -> None:
    """Everything must be plain, bounded JSON (maestra/jsonvalues.py): a dict
    handed in by Python code could hold a set, a datetime or NaN, which could
    not be stored or exported; a deeper document could not be dumped, nor
    walked by the (recursive) rule language; a lone surrogate could not be
    stored."""
    for where, message in json_problems(value, path):
        add(where, message)


def _check_string(
    value: Any, field: str, add, *, max_length: int | None = None, non_empty: bool = False
) -> bool:
    if not isinstance(value, str):
        add(field, "must be a string")
        return False
    if non_empty and not value.strip():
        add(field, "must not be empty")
        return False
    if max_length is not None and len(value) > max_length:
        add(field, f"must be at most {max_length} characters")
        return False
    return True


def _check_unknown_keys(value: dict, allowed: frozenset, prefix: str, add) -> None:
    for key in value:
        if key not in allowed:
            add(f"{prefix}.{key}", "unknown field")


def _optional_object(value: Any, name: str, keys: frozenset, add, *, expected: str) -> bool:
    """Whether `value` is an object to check further: null (or absent) is
    fine and has nothing to check, anything else must be an object (`expected`
    says which), whose unknown keys are reported here."""
    if value is None:
        return False
    if not isinstance(value, dict):
        add(name, f"must be {expected}")
        return False
    _check_unknown_keys(value, keys, name, add)
    return True


def _parse_launch_limit(value: Any, add) -> None:
    expected = "an object {mode, period, max_total}"
    if not _optional_object(value, "launch_limit", _LAUNCH_LIMIT_KEYS, add, expected=expected):
        return
    if "mode" in value:
        _check_string(value["mode"], "launch_limit.mode", add)
    if value.get("period") is not None:
        _check_string(value["period"], "launch_limit.period", add)
    max_total = value.get("max_total")
    if max_total is not None and not is_int(max_total):
        add("launch_limit.max_total", "must be an integer or null")


def _parse_schedule(value: Any, add) -> None:
    if not _optional_object(value, "schedule", _SCHEDULE_KEYS, add, expected="an object {start_at, end_at}"):
        return
    for name in ("start_at", "end_at"):
        if value.get(name) is not None:
            _check_string(value[name], f"schedule.{name}", add)


def _parse_criteria(value: Any, name: str, keys: frozenset, add) -> None:
    """The JSON shape of `goal` / `exit`: an object of known keys with
    values of the right types, or null."""
    expected = "an object {" + ", ".join(sorted(keys)) + "} or null"
    if not _optional_object(value, name, keys, add, expected=expected):
        return
    if "event_type" not in value:
        add(f"{name}.event_type", "missing")
    else:
        _check_string(value["event_type"], f"{name}.event_type", add)
    if value.get("filter") is not None and not isinstance(value["filter"], dict):
        add(f"{name}.filter", "must be a rule (an object) or null")
    for text_key in ("window", "value_field"):
        if text_key in keys and value.get(text_key) is not None:
            _check_string(value[text_key], f"{name}.{text_key}", add)


def _parse_node(node: Any, prefix: str, add) -> None:
    if not isinstance(node, dict):
        add(prefix, "a node must be an object")
        return
    _check_unknown_keys(node, _NODE_KEYS, prefix, add)
    if "key" not in node:
        add(f"{prefix}.key", "missing")
    elif _check_string(
        node["key"], f"{prefix}.key", add, max_length=MAX_KEY_LENGTH, non_empty=True
    ) and not KEY_PATTERN.fullmatch(node["key"]):
        add(f"{prefix}.key", "may only contain letters, digits, '_' and '-'")
    if "kind" not in node:
        add(f"{prefix}.kind", "missing")
    else:
        _check_string(node["kind"], f"{prefix}.kind", add, max_length=MAX_KIND_LENGTH)
    if "title" in node:
        _check_string(node["title"], f"{prefix}.title", add, max_length=MAX_TITLE_LENGTH)
    if "config" in node and not isinstance(node["config"], dict):
        add(f"{prefix}.config", "must be an object")
    if "position" in node and node["position"] is not None:
        position = node["position"]
        if (
            not isinstance(position, dict)
            or set(position) != {"x", "y"}
            or not all(_is_number(position[axis]) for axis in ("x", "y"))
        ):
            add(f"{prefix}.position", "must be an object {x: number, y: number}")


def _parse_edge(edge: Any, prefix: str, add) -> None:
    if not isinstance(edge, dict):
        add(prefix, "an edge must be an object {from, to, port?}")
        return
    _check_unknown_keys(edge, _EDGE_KEYS, prefix, add)
    for name in ("from", "to"):
        if name not in edge:
            add(f"{prefix}.{name}", "missing")
        else:
            _check_string(edge[name], f"{prefix}.{name}", add, max_length=MAX_KEY_LENGTH)
    if "port" in edge:
        _check_string(edge["port"], f"{prefix}.port", add, max_length=MAX_PORT_LENGTH)


def _is_number(value: Any) -> bool:
    return (is_int(value) or isinstance(value, float)) and math.isfinite(value)


# --- Reading (defaults applied here, never written into the document) --------


@dataclass
class FlowSettings:
    timezone: str = DEFAULT_TIMEZONE
    launch_limit_mode: str = DEFAULT_LAUNCH_LIMIT_MODE
    launch_limit_period: timedelta | None = None
    launch_limit_max_total: int | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None


def document_settings(doc: dict) -> FlowSettings:
    """The flow settings of a well-formed document, defaults applied.

    Tolerant on purpose: a draft with errors is still stored, so an invalid
    value (reported by validate_document) reads as its default instead of
    raising."""
    settings = FlowSettings()
    timezone = doc.get("timezone")
    if isinstance(timezone, str) and timezone_problem(timezone) is None:
        settings.timezone = timezone

    launch_limit = doc.get("launch_limit")
    if isinstance(launch_limit, dict):
        if launch_limit.get("mode") in LAUNCH_LIMIT_MODES:
            settings.launch_limit_mode = launch_limit["mode"]
        period = launch_limit.get("period")
        # Only a periodic limit has a period (a leftover one is ignored).
        if (
            settings.launch_limit_mode == "periodic"
            and period is not None
            and duration_problem(period) is None
        ):
            settings.launch_limit_period = parse_duration(period).approximate()
        max_total = launch_limit.get("max_total")
        # Beyond MAX_INT the column could not hold it (the draft is invalid anyway).
        if is_int(max_total) and 0 < max_total <= MAX_INT:
            settings.launch_limit_max_total = max_total

    schedule = doc.get("schedule")
    if isinstance(schedule, dict):
        settings.start_at = _read_datetime(schedule.get("start_at"))
        settings.end_at = _read_datetime(schedule.get("end_at"))
    return settings


def graph_rows(doc: dict) -> tuple[list[dict], list[dict]]:
    """The document's nodes and edges as rows for the Node and Edge tables."""
    nodes = [
        {
            "key": node["key"],
            "kind": node["kind"],
            "title": node.get("title", ""),
            "config": node.get("config", {}),
            "position": node.get("position"),
        }
        for node in doc.get("nodes", [])
    ]
    edges = [
        {"from_key": edge["from"], "port": edge.get("port", "next"), "to_key": edge["to"]}
        for edge in doc.get("edges", [])
    ]
    return nodes, edges


def dump_document(doc: dict, *, indent: int | None = None) -> str:
    """Canonical JSON text of a document (key order preserved): what
    FlowVersion.document_json stores and export prints."""
    return json.dumps(doc, ensure_ascii=False, indent=indent)


def _read_datetime(value: Any) -> datetime | None:
    if value is None or datetime_problem(value) is not None:
        return None
    return datetime.fromisoformat(value)
