"""Exit windows and dynamic wait targets of the wait node (SPEC §5, §8).

WINDOW = {"weekdays": ["mon", …], "from": "10:00", "to": "18:00",
          "timezone": "flow" | "customer" | IANA name}

A window is a set of local *wall-clock* intervals, and every question is
answered in wall time of the window's zone:

- `from` is inclusive, `to` exclusive.
- `to` earlier than `from` is an overnight window (22:00–06:00). The part
  after midnight belongs to the weekday on which the window opened: with
  weekdays ["fri"], Friday 22:00 → Saturday 06:00 is open, and Friday
  00:00–06:00 is not (unless Thursday is listed too).
- `from` equal to `to` means the whole day (00:00–24:00 of each listed weekday).
- DST: a moment is inside when its local wall time is. During the autumn
  repeated hour both occurrences of a wall time count. A `from` inside the
  spring gap (02:30 on 2026-03-29 in Berlin) moves forward to the end of the
  gap: the window opens at 03:00, the first moment whose wall time is past
  02:30. (Moving it "by the gap" to 03:30 would leave 03:00–03:30 inside the
  window by wall time but before its opening, so is_open and next_open would
  disagree.)
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flows.document.fields import WEEKDAYS, parse_time_of_day, timezone_problem, validate_weekdays
from maestra.durations import Duration
from maestra.zones import localize, wall_moments, zone_or_none

WINDOW_ZONES = ("flow", "customer")
# The years a dynamic wait may end in (see dynamic_target).
TARGET_YEARS = (1000, 2999)


def validate_window(window: object) -> list[tuple[str, str]]:
    """Every problem of a WINDOW as (field path inside the window, message).
    `timezone` may be left out and then means "flow". The one judge of a
    window: the wait node's validation and the functions below call it."""
    if not isinstance(window, dict):
        return [("", 'must be an object {"weekdays", "from", "to", "timezone"}')]
    problems = [
        (str(key), "unknown field") for key in window if key not in {"weekdays", "from", "to", "timezone"}
    ]
    problems += validate_weekdays(window.get("weekdays"), "weekdays")
    for key in ("from", "to"):
        if key not in window:
            problems.append((key, "is required (a time of day such as 10:00)"))
            continue
        try:
            parse_time_of_day(window[key])
        except ValueError as error:
            problems.append((key, str(error)))
    if "timezone" in window and (message := timezone_problem(window["timezone"], also=WINDOW_ZONES)):
        problems.append(("timezone", message))
    return problems


def resolve_window_tz(window: dict, *, flow_tz: str, customer_tz: str | None) -> ZoneInfo:
    """The zone a window is read in. "customer" falls back to the flow's zone
    when the customer has none or an unknown one; so does an IANA name this
    system does not know (validation rejects it, but a run must not get stuck
    on a zone database that changed under it). Raises ValueError only when the
    flow's own zone is unknown."""
    flow_zone = zone_or_none(flow_tz)
    if flow_zone is None:
        raise ValueError(f"the flow's time zone {flow_tz!r} is unknown")
    zone = window.get("timezone", "flow")
    if zone == "flow":
        return flow_zone
    if zone == "customer":
        return zone_or_none(customer_tz) or flow_zone
    return zone_or_none(zone) or flow_zone


class _Window:
    def __init__(self, window: dict):
        problems = validate_window(window)
        if problems:
            raise ValueError(
                "invalid window: " + "; ".join(f"{path or 'window'}: {msg}" for path, msg in problems)
            )
        self.weekdays = {WEEKDAYS.index(name) for name in window["weekdays"]}
        opens, closes = parse_time_of_day(window["from"]), parse_time_of_day(window["to"])
        self.whole_day = opens == closes
        self.overnight = closes < opens
        self.opens = time(0) if self.whole_day else time(opens // 60, opens % 60)
        self.closes = time(closes // 60, closes % 60)

    def contains_wall(self, wall: datetime) -> bool:
        day, clock = wall.date(), wall.time()
        if self.whole_day:
            return day.weekday() in self.weekdays
        if self.overnight:
            opened_today = day.weekday() in self.weekdays and clock >= self.opens
            opened_yesterday = (day.weekday() - 1) % 7 in self.weekdays and clock < self.closes
            return opened_today or opened_yesterday
        return day.weekday() in self.weekdays and self.opens <= clock < self.closes


def _aware(moment: datetime) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("at must be an aware datetime")
    return moment


def is_open(window: dict, *, at: datetime, tz: ZoneInfo) -> bool:
    """Is the local wall time of `at` inside the window?"""
    return _Window(window).contains_wall(_aware(at).astimezone(tz).replace(tzinfo=None))


def next_open(window: dict, *, at: datetime, tz: ZoneInfo) -> datetime:
    """The first moment ≥ `at` inside the window (`at` itself when already
    inside), as an aware UTC datetime."""
    spec = _Window(window)
    at = _aware(at).astimezone(UTC)
    if spec.contains_wall(at.astimezone(tz).replace(tzinfo=None)):
        return at
    today = at.astimezone(tz).date()
    candidates = []
    # Openings happen at `from` (midnight for whole-day windows) of a listed
    # weekday. A week and a day always holds the next one, unless that opening
    # falls in a DST gap: then the same weekday a week later opens (gaps are
    # never a week apart), so two weeks and a day are searched.
    for offset in range(-1, 16):
        day = today + timedelta(days=offset)
        if day.weekday() not in spec.weekdays:
            continue
        for moment in wall_moments(datetime.combine(day, spec.opens), tz):
            # An opening wholly inside a DST gap (02:10–02:40) never happens.
            if moment >= at and spec.contains_wall(moment.astimezone(tz).replace(tzinfo=None)):
                candidates.append(moment)
        if candidates:
            break
    if not candidates:
        raise ValueError("the window never opens")  # only for a window that falls entirely in DST gaps
    return min(candidates)


def dynamic_target(value: object, *, offset: Duration | None, tz: ZoneInfo) -> datetime | None:
    """The end of a dynamic wait (SPEC §5): `value` (a date or datetime, as an
    ISO string or a Python object) plus `offset`, as an aware UTC datetime.

    A date-only value means local midnight in `tz`; a naive datetime is local
    wall time in `tz` (a time in the DST gap moves forward, an ambiguous one
    takes its first occurrence). The offset is applied with Duration.add_to,
    so "-P3D" keeps the local wall time across a DST change. None when the
    value is missing or cannot be read as a date, or when the target falls
    outside the years 1000–2999 (the dates the rule language reads too): the
    engine stops the run with `dynamic_wait_value_missing`. A target near
    the end of the calendar ("9999-12-31") would make the exit window's
    search overflow, and one near its start cannot even be read in UTC."""
    try:
        moment = _read_moment(value, tz)
        if moment is None:
            return None
        target = offset.add_to(moment, tz) if offset is not None else moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return None  # pushed off the calendar (year 1 or 9999)
    return target if TARGET_YEARS[0] <= target.year <= TARGET_YEARS[1] else None


def _read_moment(value: object, tz: ZoneInfo) -> datetime | None:
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            # Date-only strings first: fromisoformat("2026-06-01") would read
            # them as a naive datetime too, but "20260601" only as a date.
            value = date.fromisoformat(text) if len(text) <= 10 else datetime.fromisoformat(text)
        except ValueError:
            return None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            return localize(value, tz)
        return value
    if isinstance(value, date):
        return localize(datetime.combine(value, time()), tz)
    return None
