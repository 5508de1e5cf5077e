"""Validating a rule: `validate_rule` lists every problem with where it is;
`require_valid` raises the first as RuleError. The one validator of the rule
language: the API, the admin, the flow document and the evaluators all call it,
so what is accepted at save time is exactly what runs."""

from __future__ import annotations

import math
from typing import Any

from customers.errors import RuleError
from customers.rules.paths import (
    COUNT_OPS,
    EVENT_LEAF_KEYS,
    EVENT_OPS,
    LIST_OPS,
    MAX_COUNT,
    MAX_DEPTH,
    MAX_EVENT_TYPE_LENGTH,
    MAX_NUMBER,
    MOMENT_OPS,
    NUMERIC_OPS,
    OPS,
    OPS_BY_KIND,
    PRESENCE_OPS,
    SUBSCRIPTION_STATUSES,
    Path,
    is_number,
    is_scalar,
    parse_duration,
    parse_moment,
    parse_path,
)
from maestra.jsonvalues import text_problem


def validate_rule(rule: Any, *, allow_event: bool = True) -> list[tuple[str, str]]:
    """Problems in `rule` as (dotted path inside the rule, message); empty when
    the rule is valid. Never raises. Whether segments and pools exist is not
    checked here. Segment rules should pass allow_event=False: they are
    evaluated without a trigger event."""
    errors: list[tuple[str, str]] = []
    _validate_node(rule, "", 1, errors, allow_event)
    return errors


def _join(prefix: str, name: str | int) -> str:
    return f"{prefix}.{name}" if prefix else str(name)


def _validate_node(
    node: Any, at: str, depth: int, errors: list, allow_event: bool, in_where: bool = False
) -> None:
    """`in_where`: inside an event-history leaf's `where`, which reads the
    counted event's payload only (event.<path>), whatever `allow_event` says."""
    if depth > MAX_DEPTH:
        errors.append((at, f"rules nest at most {MAX_DEPTH} levels deep"))
        return
    if not isinstance(node, dict):
        errors.append((at, "a rule must be an object with all, any, not or field/op/value"))
        return
    combinators = [key for key in ("all", "any", "not") if key in node]
    if combinators:
        if len(node) != 1:
            errors.append((at, f"{combinators[0]!r} must be the only key of its object"))
            return
        key = combinators[0]
        inner = node[key]
        if key == "not":
            _validate_node(inner, _join(at, "not"), depth + 1, errors, allow_event, in_where)
            return
        if not isinstance(inner, list) or not inner:
            errors.append((_join(at, key), f"{key!r} needs a non-empty list of rules"))
            return
        for index, child in enumerate(inner):
            _validate_node(child, _join(_join(at, key), index), depth + 1, errors, allow_event, in_where)
        return
    if "event" in node:
        if in_where:
            errors.append((_join(at, "event"), "an event's where cannot count other events"))
            return
        _validate_event_leaf(node, at, depth, errors)
        return
    _validate_leaf(node, at, errors, allow_event or in_where, in_where)


def _validate_event_leaf(node: dict, at: str, depth: int, errors: list) -> None:
    """{"event": TYPE, "where": RULE|null, "within": DURATION|null, "op": OP, "value": N}."""
    unknown = sorted(str(key) for key in node if key not in EVENT_LEAF_KEYS)
    if unknown:
        errors.append(
            (_join(at, unknown[0]), f"unknown key {unknown[0]!r} (use event, where, within, op, value)")
        )
    event = node["event"]
    if not isinstance(event, str) or not event.strip():
        errors.append((_join(at, "event"), "needs the event type to count (e.g. order_created)"))
    elif len(event) > MAX_EVENT_TYPE_LENGTH:
        errors.append((_join(at, "event"), f"must be at most {MAX_EVENT_TYPE_LENGTH} characters"))
    elif problem := text_problem(event):
        errors.append((_join(at, "event"), problem))
    within = node.get("within")
    if within is not None:
        try:
            parse_duration(within)
        except RuleError as exc:
            errors.append((_join(at, "within"), str(exc)))
    op = node.get("op")
    if op not in EVENT_OPS:
        errors.append((_join(at, "op"), f"unknown op {op!r} for events: use one of {', '.join(EVENT_OPS)}"))
    elif op in COUNT_OPS:
        value = node.get("value")
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append((_join(at, "value"), f"op {op!r} needs a whole number of events"))
        elif not 0 <= value <= MAX_COUNT:
            errors.append((_join(at, "value"), f"must be between 0 and {MAX_COUNT}"))
    where = node.get("where")
    if where is not None:
        # The where rule nests inside the leaf: it counts towards MAX_DEPTH.
        _validate_node(where, _join(at, "where"), depth + 1, errors, True, True)


def _validate_leaf(node: dict, at: str, errors: list, allow_event: bool, in_where: bool = False) -> None:
    unknown = sorted(str(key) for key in node if key not in ("field", "op", "value"))
    if unknown:
        errors.append((_join(at, unknown[0]), f"unknown key {unknown[0]!r} (use field, op, value)"))
    if "field" not in node:
        errors.append((_join(at, "field"), "field is required"))
        return
    try:
        path = parse_path(node["field"])
    except RuleError as exc:
        errors.append((_join(at, "field"), str(exc)))
        return
    if path.source == "event" and not allow_event:
        errors.append((_join(at, "field"), "event fields are not available here (no trigger event)"))
        return
    if in_where and path.source != "event":
        errors.append((_join(at, "field"), "a where reads the counted event: use event.<payload key>"))
        return
    op = node.get("op")
    if op not in OPS:
        errors.append((_join(at, "op"), f"unknown op {op!r}: use one of {', '.join(OPS)}"))
        return
    if op not in OPS_BY_KIND[path.kind]:
        allowed = ", ".join(OPS_BY_KIND[path.kind])
        errors.append((_join(at, "op"), f"{node['field']} does not support {op!r} (use {allowed})"))
        return
    problem = _value_problem(path, op, node.get("value"), "value" in node)
    if problem:
        errors.append((_join(at, "value"), problem))


def _value_problem(path: Path, op: str, value: Any, present: bool) -> str | None:
    if op in PRESENCE_OPS:
        return None
    if not present:
        return f"op {op!r} needs a value"
    # A rule is stored (segments, flow documents): PostgreSQL refuses lone surrogates and NUL.
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, str) and (message := text_problem(item)):
            return message
    if op in LIST_OPS:
        if not isinstance(value, list) or not value:
            return f"op {op!r} needs a non-empty list"
        for item in value:
            problem = _scalar_problem(path, item)
            if problem:
                return f"list item {item!r}: {problem}"
        return None
    if op in NUMERIC_OPS:
        return _number_problem(value)
    if op in MOMENT_OPS:
        if parse_moment(value) is None:
            return "needs an ISO date or date-time string such as 2024-05-31 or 2024-05-31T18:00:00Z"
        return None
    if op == "within_last":
        try:
            parse_duration(value)
        except RuleError as exc:
            return str(exc)
        return None
    if op == "contains" and path.kind == "json":
        return None if is_scalar(value) else "contains needs a string, number or boolean"
    return _scalar_problem(path, value)  # eq, ne, contains on attributes


def _number_problem(value: Any) -> str | None:
    if not is_number(value):
        return "needs a number"
    if isinstance(value, float) and not math.isfinite(value):
        return "needs a finite number"
    if abs(value) > MAX_NUMBER:
        return "numbers are limited to ±2**53"
    return None


def _scalar_problem(path: Path, value: Any) -> str | None:
    if path.kind == "segment":
        return None if isinstance(value, str) and value else "segment slugs are non-empty strings"
    if path.kind == "subscription":
        if value not in SUBSCRIPTION_STATUSES:
            return f"a subscription status is one of {', '.join(SUBSCRIPTION_STATUSES)}"
        return None
    if path.kind == "string_attr":
        return None if isinstance(value, str) else "this customer attribute compares with strings"
    if path.kind == "number":
        return _number_problem(value)
    if isinstance(value, str | bool):
        return None
    if is_number(value):
        return _number_problem(value)
    return "needs a string, number or boolean (use exists/not_exists for null)"


def require_valid(rule: Any, *, allow_event: bool = True) -> None:
    """RuleError naming the first problem of an invalid rule."""
    errors = validate_rule(rule, allow_event=allow_event)
    if errors:
        where, message = errors[0]
        raise RuleError(f"{where}: {message}" if where else message)


def require_valid_segment_rule(slug: str, rule: Any) -> None:
    """The stored rule of segment `slug` (no trigger event there) or RuleError."""
    errors = validate_rule(rule, allow_event=False)
    if errors:
        where, message = errors[0]
        raise RuleError(f"segment {slug!r} has an invalid rule: {where}: {message}")
