"""Reading a value by path ("customer.fields.birthday", "event.order.total")
from the rows a batch has loaded: the customer row and the trigger event."""

from __future__ import annotations

from typing import Any

MISSING = object()


def dig(data: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return MISSING
    return data


def lookup(path: str, *, customer: dict | None, event: dict | None) -> Any:
    """The value at `path`, or MISSING. Customer columns and custom fields come
    from the customer row; `event.<name>` from the trigger event's payload."""
    head, _, rest = path.partition(".")
    if head == "customer" and customer is not None:
        if rest.startswith("fields."):
            return dig(customer.get("fields") or {}, rest[len("fields.") :].split("."))
        return customer.get(rest, MISSING)
    if head == "event" and event is not None:
        return dig(event.get("payload") or {}, rest.split("."))
    return MISSING
