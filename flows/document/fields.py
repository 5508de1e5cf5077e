"""The small value formats of the maestra.flow/1 document: durations, time
zones, ISO datetimes, port names, weekdays and JSON integers. Node kinds, the
document's validation and the settings check share them; each `*_problem`
returns a message or None. They sit below the node kinds (flows/nodes/), which
judge their configs with them, so they import nothing of flows.

Recurrences and exit windows (with their "HH:MM" times and weekdays) are
judged by flows/nodes/schedule/recurrence.py and flows/nodes/wait/windows.py,
the modules the engine runs them with.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from maestra.durations import parse_duration
from maestra.zones import known_zones

# Column size of Edge.port: branch and variant names are port names.
MAX_PORT_LENGTH = 100
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LAUNCH_LIMIT_MODES = ("once", "every_time", "periodic")
# "HH:MM", 00:00 to 23:59, exactly as the document format writes times
# (schedule recurrences and wait windows).
_TIME = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])\Z")


def is_int(value: Any) -> bool:
    """A JSON integer (bool is an int in Python, not in JSON)."""
    return isinstance(value, int) and not isinstance(value, bool)


def duration_problem(value: Any, *, positive: bool = True) -> str | None:
    """An ISO 8601 duration (at most 100 years either way: parse_duration
    refuses longer ones); `positive` refuses zero and negative ones."""
    try:
        length = parse_duration(value).approximate()
    except ValueError as error:
        return str(error)
    if positive and length <= timedelta(0):
        return "must be a positive duration"
    return None


def port_name_problem(value: Any) -> str | None:
    """Branch and variant names are port names: edges refer to them."""
    if not isinstance(value, str) or not value.strip():
        return "must be a non-empty string"
    if len(value) > MAX_PORT_LENGTH:
        return f"must be at most {MAX_PORT_LENGTH} characters"
    return None


def timezone_names() -> list[str]:
    """The IANA names timezone_problem accepts, sorted: the choices of the
    canvas's time zone pickers."""
    return sorted(known_zones())


def timezone_problem(value: Any, *, also: tuple[str, ...] = ()) -> str | None:
    """An IANA time zone name, or one of the words in `also` ("flow", "customer")."""
    if isinstance(value, str) and (value in also or value in known_zones()):
        return None
    words = " or ".join(f'"{word}"' for word in also)
    return f"{value!r} is not an IANA time zone (e.g. Europe/Berlin)" + (f" nor {words}" if words else "")


def datetime_problem(value: Any) -> str | None:
    """An ISO 8601 date and time with a UTC offset."""
    if not isinstance(value, str):
        return "must be an ISO 8601 date and time string"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return f"{value!r} is not an ISO 8601 date and time (e.g. 2025-06-01T10:00:00+02:00)"
    if moment.tzinfo is None or moment.utcoffset() is None:
        return "needs a UTC offset (e.g. +02:00 or Z)"
    return None


def parse_time_of_day(text: object) -> int:
    """ "HH:MM" (00:00–23:59) → minutes after midnight. Raises ValueError."""
    match = _TIME.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError('must be a time "HH:MM" between 00:00 and 23:59, such as 09:30')
    return int(match.group(1)) * 60 + int(match.group(2))


def validate_weekdays(value: object, path: str) -> list[tuple[str, str]]:
    """A non-empty list of distinct weekday names ("mon" … "sun")."""
    if not isinstance(value, list) or not value:
        return [(path, "must be a non-empty list of weekdays (mon, tue, …, sun)")]
    problems = []
    seen = set()
    for index, name in enumerate(value):
        if name not in WEEKDAYS:
            problems.append((f"{path}.{index}", f"{name!r} is not a weekday (mon, tue, …, sun)"))
        elif name in seen:
            problems.append((f"{path}.{index}", f"{name!r} is listed twice"))
        seen.add(name)
    return problems
