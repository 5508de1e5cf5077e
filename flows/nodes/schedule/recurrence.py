"""Recurrences of schedule start nodes (SPEC §5, §8): when does a flow fire?

Shapes (the document format; keep these names):

    {"every": "day", "at": "10:00"}
    {"every": "week", "interval": 2, "weekdays": ["mon", "thu"], "at": "09:30"}
    {"every": "month", "days": [1, 15, "last"], "at": "08:00"}
    {"every": "month", "nth_weekday": {"n": 2, "weekday": "tue"}, "at": "08:00"}
    {"cron": "0 10 * * 1-5"}

All times are local wall times in the schedule's zone. The rules from SPEC §8:
a fire strictly after the given moment; day 31 (30, 29) is skipped in months
that lack it ("last" is the explicit way to say "the last day"); a local time
that does not exist (DST gap) moves forward by the gap; an ambiguous one takes
its first occurrence; "every N weeks" counts ISO weeks from the week of the
launch (the anchor), which is week 0.

The search walks matching *days* and, inside a day, bisects the sorted
times of that day, so it never steps minute by minute. Days on which the UTC
offset changes are the exception: there every time of the day is localized
one by one (at most 1,440 for a cron firing every minute, twice a year).
"""

from __future__ import annotations

import calendar
import re
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from flows.document.fields import WEEKDAYS, is_int, parse_time_of_day, validate_weekdays
from maestra.durations import localize

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
EVERY = ("day", "week", "month")
MAX_WEEK_INTERVAL = 52
# A valid recurrence fires at least once in any 13 years. The rarest ones:
# February 29, which skips 2100 (2096 → 2104), and crons whose day-of-month
# starts with "*" while the weekday is restricted, which must match both (as in
# Vixie cron): "0 0 */31 jan mon" fires on January 1sts that are Mondays, up to
# 12 years apart (2091 → 2103). validate_recurrence refuses everything
# that never fires, so a walk this long without a fire is a bug, not an input.
HORIZON_DAYS = 13 * 366 + 7

_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_FULL_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_ORDINALS = {1: "1st", 2: "2nd", 3: "3rd", 4: "4th", 5: "5th", -1: "last"}


# --------------------------------------------------------------------------- validation


def _unknown_keys(recurrence: dict, allowed: set[str]) -> list[tuple[str, str]]:
    return [(str(key), "unknown field") for key in recurrence if key not in allowed]


def validate_recurrence(recurrence: object) -> list[tuple[str, str]]:
    """Every problem of a recurrence as (field path inside the recurrence,
    message); an empty list means it is valid and fires at least once in any
    HORIZON_DAYS. The one judge of a recurrence: the schedule node's
    validation (flows/nodes/schedule/__init__.py) and every runtime function below call
    it, so what saves as valid is exactly what the engine can arm and fire."""
    if not isinstance(recurrence, dict):
        return [("", 'must be an object such as {"every": "day", "at": "10:00"}')]
    if "cron" in recurrence:
        problems = _unknown_keys(recurrence, {"cron"})
        try:
            _parse_cron(recurrence["cron"])
        except ValueError as error:
            problems.append(("cron", str(error)))
        return problems

    every = recurrence.get("every")
    if every not in EVERY:
        return [("every", "must be one of day, week, month (or give a cron string instead)")]
    problems: list[tuple[str, str]] = []
    if "at" not in recurrence:
        problems.append(("at", "is required (a time of day such as 10:00)"))
    else:
        try:
            parse_time_of_day(recurrence["at"])
        except ValueError as error:
            problems.append(("at", str(error)))

    if every == "day":
        problems += _unknown_keys(recurrence, {"every", "at"})
    elif every == "week":
        problems += _unknown_keys(recurrence, {"every", "at", "interval", "weekdays"})
        interval = recurrence.get("interval", 1)
        if not is_int(interval) or not 1 <= interval <= MAX_WEEK_INTERVAL:
            problems.append(("interval", f"must be a whole number of weeks from 1 to {MAX_WEEK_INTERVAL}"))
        problems += validate_weekdays(recurrence.get("weekdays"), "weekdays")
    else:
        problems += _unknown_keys(recurrence, {"every", "at", "days", "nth_weekday"})
        has_days, has_nth = "days" in recurrence, "nth_weekday" in recurrence
        if has_days == has_nth:
            problems.append(("days", 'give either days (e.g. [1, 15, "last"]) or nth_weekday, not both'))
        elif has_days:
            problems += _validate_month_days(recurrence["days"])
        else:
            problems += _validate_nth_weekday(recurrence["nth_weekday"])
    return problems


def _validate_month_days(days: object) -> list[tuple[str, str]]:
    if not isinstance(days, list) or not days:
        return [("days", 'must be a non-empty list of days of the month (1–31 or "last")')]
    problems = []
    seen = set()
    for index, day in enumerate(days):
        if not (day == "last" or (is_int(day) and 1 <= day <= 31)):
            problems.append((f"days.{index}", f'{day!r} is not a day of the month (1–31 or "last")'))
        elif day in seen:
            problems.append((f"days.{index}", f"{day!r} is listed twice"))
        seen.add(day)
    return problems


def _validate_nth_weekday(nth: object) -> list[tuple[str, str]]:
    if not isinstance(nth, dict):
        return [("nth_weekday", 'must be an object such as {"n": 2, "weekday": "tue"}')]
    problems = _unknown_keys(nth, {"n", "weekday"})
    problems = [(f"nth_weekday.{key}", message) for key, message in problems]
    n = nth.get("n")
    if not is_int(n) or n not in _ORDINALS:
        problems.append(("nth_weekday.n", "must be 1 to 5, or -1 for the last one in the month"))
    if nth.get("weekday") not in WEEKDAYS:
        problems.append(("nth_weekday.weekday", "must be a weekday (mon, tue, …, sun)"))
    return problems


# --------------------------------------------------------------------------- cron


@dataclass(frozen=True)
class _Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # cron numbering: 0 = Sunday
    # As in Vixie cron: a day field that starts with "*" (also "*/2") counts as
    # unrestricted, and when both day fields are restricted either one matches.
    days_star: bool
    weekdays_star: bool

    def matches_day(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = (day.weekday() + 1) % 7 in self.weekdays
        if self.days_star or self.weekdays_star:
            return in_days and in_weekdays
        return in_days or in_weekdays


_CRON_FIELDS = (
    # name, values, names (value of the first name), cronsim's name of the field
    ("minute", "0–59", None, "minute"),
    ("hour", "0–23", None, "hour"),
    ("day of month", "1–31", None, "day-of-month"),
    ("month", "1–12", MONTHS, "month"),
    ("day of week", "0–7", ("sun", "mon", "tue", "wed", "thu", "fri", "sat"), "day-of-week"),
)
# The five-field cron the document promises: *, 5, 1-5, */15, 1-31/2, lists,
# month and weekday names. cronsim reads more (a seconds field, L, W, #, ?),
# which the editor does not offer and the format does not allow.
_CRON_ITEM = re.compile(r"^(?:(\*)|([0-9a-z]+)(?:-([0-9a-z]+))?)(?:/([0-9]+))?$")
# "fri-sun": Sunday (0) closes a weekday range; cronsim spells that 7.
_SUNDAY_CLOSES = re.compile(r"^((?!0-|sun-)[0-9a-z]+)-(?:0|sun)(/[0-9]+)?$")
# A moment only for cronsim's constructor: the fields are parsed, never iterated.
_PARSE_AT = datetime(2000, 1, 1)


def _dialect_problem(text: str, field: str, names: tuple[str, ...] | None) -> str | None:
    for item in text.split(","):
        match = _CRON_ITEM.match(item)
        if not match:
            return f"{field}: {item!r} is not a cron item (*, 5, 1-5, */15, 1-31/2, a list)"
        for token in match.group(2, 3):
            if token and not token.isdigit() and not (names and token in names):
                return f"{field}: {token!r} is not a number{' or a name' if names else ''}"
    return None


def _parse_cron(expression: object) -> _Cron:
    """A five-field cron, read by cronsim (fields, ranges, steps, names and
    the day-of-month/day-of-week rule of Vixie cron). Only the walk over days
    stays in this module: cronsim's iteration follows Debian cron's DST quirks,
    not the rules of SPEC §8 (a time in the gap moves forward by the gap), and
    the engine also walks backwards over missed fires."""
    if not isinstance(expression, str):
        raise ValueError('must be a cron string such as "0 10 * * 1-5"')
    fields = expression.lower().split()
    if len(fields) != 5:
        raise ValueError("must have 5 fields: minute hour day-of-month month day-of-week")
    for text, (name, _values, names, _cronsim_name) in zip(fields, _CRON_FIELDS):
        if problem := _dialect_problem(text, name, names):
            raise ValueError(problem)
    fields[4] = ",".join(_SUNDAY_CLOSES.sub(r"\1-7\2", item) for item in fields[4].split(","))
    try:
        parsed = CronSim(" ".join(fields), _PARSE_AT)
    except CronSimError as error:
        raise ValueError(_cron_error(str(error), fields)) from None
    return _Cron(
        minutes=frozenset(parsed.minutes),
        hours=frozenset(parsed.hours),
        days=frozenset(parsed.days),
        months=frozenset(parsed.months),
        weekdays=frozenset(day % 7 for day in parsed.weekdays),  # 7 is Sunday too
        days_star=fields[2].startswith("*"),
        weekdays_star=fields[4].startswith("*"),
    )


def _cron_error(message: str, fields: list[str]) -> str:
    """cronsim's "Bad <field>" as a message naming the field and its values."""
    for index, (name, values, names, cronsim_name) in enumerate(_CRON_FIELDS):
        if message != f"Bad {cronsim_name}":
            continue
        if index == 2 and not fields[2].startswith("*"):
            # cronsim also refuses a day of month no listed month has when both
            # day fields must match; the same field alone, with a weekday
            # (either one then matches), tells that apart from a bad value.
            try:
                CronSim(f"0 0 {fields[2]} * 1", _PARSE_AT)
            except CronSimError:
                pass
            else:
                return "never fires: none of its months has that day of the month (such as 31 February)"
        spelled = f"{values}{' or a name' if names else ''}"
        return (
            f"{name}: {fields[index]!r} is not valid ({spelled}; a range runs forwards, a step is at least 1)"
        )
    return message


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class _Plan:
    """A recurrence reduced to: which local days fire, and at which minutes of the day."""

    minutes_of_day: tuple[int, ...]  # sorted, distinct
    matches_day: Callable[[date], bool]
    months: frozenset[int]  # lets the day walk jump over whole months


_ALL_MONTHS = frozenset(range(1, 13))


def _plan(recurrence: object, *, tz: ZoneInfo, anchor: datetime) -> _Plan:
    problems = validate_recurrence(recurrence)
    if problems:
        raise ValueError(
            "invalid recurrence: " + "; ".join(f"{path or 'recurrence'}: {msg}" for path, msg in problems)
        )
    assert isinstance(recurrence, dict)
    _aware(anchor, "anchor")
    if "cron" in recurrence:
        cron = _parse_cron(recurrence["cron"])
        minutes = tuple(sorted(hour * 60 + minute for hour in cron.hours for minute in cron.minutes))
        return _Plan(minutes_of_day=minutes, matches_day=cron.matches_day, months=cron.months)

    at = (parse_time_of_day(recurrence["at"]),)
    every = recurrence["every"]
    if every == "day":
        return _Plan(minutes_of_day=at, matches_day=lambda day: True, months=_ALL_MONTHS)
    if every == "week":
        interval = recurrence.get("interval", 1)
        weekdays = {WEEKDAYS.index(name) for name in recurrence["weekdays"]}
        anchor_day = anchor.astimezone(tz).date()
        anchor_monday = anchor_day - timedelta(days=anchor_day.weekday())

        def matches_week(day: date) -> bool:
            if day.weekday() not in weekdays:
                return False
            weeks = (day - timedelta(days=day.weekday()) - anchor_monday).days // 7
            return weeks % interval == 0

        return _Plan(minutes_of_day=at, matches_day=matches_week, months=_ALL_MONTHS)
    if "days" in recurrence:
        days = {day for day in recurrence["days"] if day != "last"}
        last = "last" in recurrence["days"]

        def matches_month_day(day: date) -> bool:
            # Day 31 simply never occurs in a 30-day month: skipped, not moved.
            return day.day in days or (last and day.day == calendar.monthrange(day.year, day.month)[1])

        return _Plan(minutes_of_day=at, matches_day=matches_month_day, months=_ALL_MONTHS)

    n = recurrence["nth_weekday"]["n"]
    weekday = WEEKDAYS.index(recurrence["nth_weekday"]["weekday"])

    def matches_nth_weekday(day: date) -> bool:
        if day.weekday() != weekday:
            return False
        if n == -1:
            return day.day + 7 > calendar.monthrange(day.year, day.month)[1]
        return (day.day - 1) // 7 + 1 == n

    return _Plan(minutes_of_day=at, matches_day=matches_nth_weekday, months=_ALL_MONTHS)


# --------------------------------------------------------------------------- walking days


def _aware(moment: datetime, name: str) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime")
    return moment


def _steady_offset(day: date, tz: ZoneInfo) -> timedelta | None:
    """The UTC offset of `day` when it is the same all day long (no DST change
    inside the day, which is the case for all but a couple of days a year)."""
    offsets = set()
    for wall in (datetime.combine(day, time()), datetime.combine(day + timedelta(days=1), time())):
        offsets.add(wall.replace(tzinfo=tz, fold=0).utcoffset())
        offsets.add(wall.replace(tzinfo=tz, fold=1).utcoffset())
    return offsets.pop() if len(offsets) == 1 else None


def _localized_fires(day: date, minutes_of_day: tuple[int, ...], tz: ZoneInfo) -> list[datetime]:
    """Every fire of a day whose offset changes, localized one by one (gap →
    forward, ambiguous → first), sorted and without duplicates."""
    moments = {
        localize(datetime.combine(day, time(minute // 60, minute % 60)), tz).astimezone(UTC)
        for minute in minutes_of_day
    }
    return sorted(moments)


_MINUTE = timedelta(minutes=1)


def _fires_of_day_after(day: date, plan: _Plan, tz: ZoneInfo, after: datetime) -> Iterator[datetime]:
    offset = _steady_offset(day, tz)
    if offset is None:
        yield from (moment for moment in _localized_fires(day, plan.minutes_of_day, tz) if moment > after)
        return
    midnight_utc = datetime.combine(day, time(), tzinfo=UTC) - offset
    # A fire at minute m is after `after` iff m > floor((after - midnight) / 1 minute).
    first = bisect_right(plan.minutes_of_day, (after - midnight_utc) // _MINUTE)
    for minute in plan.minutes_of_day[first:]:
        yield midnight_utc + minute * _MINUTE


def _last_fire_of_day(day: date, plan: _Plan, tz: ZoneInfo, until: datetime) -> datetime | None:
    offset = _steady_offset(day, tz)
    if offset is None:
        due = [moment for moment in _localized_fires(day, plan.minutes_of_day, tz) if moment <= until]
        return due[-1] if due else None
    midnight_utc = datetime.combine(day, time(), tzinfo=UTC) - offset
    index = bisect_right(plan.minutes_of_day, (until - midnight_utc) // _MINUTE) - 1
    return midnight_utc + plan.minutes_of_day[index] * _MINUTE if index >= 0 else None


def _first_of_next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _fires_after(
    plan: _Plan, tz: ZoneInfo, after: datetime, until: datetime | None = None
) -> Iterator[datetime]:
    """Fires strictly after `after` in increasing order (up to `until` when given)."""
    after = after.astimezone(UTC)
    # Start a day early: a time in the previous local day's DST gap may be
    # pushed past midnight.
    day = after.astimezone(tz).date() - timedelta(days=1)
    last_day = until.astimezone(tz).date() + timedelta(days=1) if until is not None else None
    quiet_since = day
    previous = after
    while last_day is None or day <= last_day:
        if (day - quiet_since).days > HORIZON_DAYS:
            raise ValueError(f"the recurrence does not fire within {HORIZON_DAYS // 366} years")
        if day.month not in plan.months:
            day = _first_of_next_month(day)
            continue
        if plan.matches_day(day):
            for moment in _fires_of_day_after(day, plan, tz, previous):
                yield moment
                previous = moment
                quiet_since = day
        if day == date.max:
            return
        day += timedelta(days=1)


# --------------------------------------------------------------------------- public API


def next_fire(recurrence: dict, *, tz: ZoneInfo, after: datetime, anchor: datetime) -> datetime:
    """The first fire strictly after `after`, as an aware UTC datetime.
    `anchor` is the launch moment ("every 2 weeks" counts from its week).
    Raises ValueError for an invalid recurrence or one that never fires."""
    _aware(after, "after")
    plan = _plan(recurrence, tz=tz, anchor=anchor)
    for moment in _fires_after(plan, tz, after):
        return moment
    raise ValueError("the recurrence does not fire after that moment")  # only at the end of the calendar


def fires_between(
    recurrence: dict, *, tz: ZoneInfo, after: datetime, until: datetime, anchor: datetime
) -> list[datetime]:
    """Every fire in (after, until], oldest first, as aware UTC datetimes."""
    _aware(after, "after")
    _aware(until, "until")
    plan = _plan(recurrence, tz=tz, anchor=anchor)
    if until <= after:
        return []
    fires = []
    for moment in _fires_after(plan, tz, after, until):
        if moment > until:
            break
        fires.append(moment)
    return fires


def last_fire_at_or_before(
    recurrence: dict, *, tz: ZoneInfo, after: datetime, until: datetime, anchor: datetime
) -> datetime | None:
    """The latest fire in (after, until], or None. The engine merges fires it
    missed into one: it runs this one, then asks next_fire(after=now).

    Walks days backwards from `until`, so a long outage costs as many steps as
    days in it (bounded by HORIZON_DAYS), not as many as missed fires."""
    after = _aware(after, "after").astimezone(UTC)
    until = _aware(until, "until").astimezone(UTC)
    plan = _plan(recurrence, tz=tz, anchor=anchor)
    if until <= after:
        return None
    # One day of slack each side: DST gaps can push a fire across midnight.
    day = until.astimezone(tz).date() + timedelta(days=1)
    first_day = after.astimezone(tz).date() - timedelta(days=1)
    oldest_day = max(first_day, day - timedelta(days=HORIZON_DAYS))
    while day >= oldest_day:
        if day.month not in plan.months:
            day = day.replace(day=1) - timedelta(days=1)
            continue
        if plan.matches_day(day):
            moment = _last_fire_of_day(day, plan, tz, until)
            if moment is not None:
                return moment if moment > after else None
        day -= timedelta(days=1)
    if oldest_day > first_day:
        raise ValueError(f"the recurrence does not fire within {HORIZON_DAYS // 366} years")
    return None


def describe(recurrence: object) -> str:
    """Human text: "Every 2 weeks on Mon, Thu at 09:30"."""
    problems = validate_recurrence(recurrence)
    if problems:
        path, message = problems[0]
        return f"Invalid recurrence ({path or 'recurrence'}: {message})"
    assert isinstance(recurrence, dict)
    if "cron" in recurrence:
        return f"Cron schedule “{' '.join(recurrence['cron'].split())}”"
    at = recurrence["at"]
    hour, minute = divmod(parse_time_of_day(at), 60)
    at = f"{hour:02d}:{minute:02d}"
    every = recurrence["every"]
    if every == "day":
        return f"Every day at {at}"
    if every == "week":
        interval = recurrence.get("interval", 1)
        days = ", ".join(
            _DAY_NAMES[WEEKDAYS.index(name)] for name in sorted(recurrence["weekdays"], key=WEEKDAYS.index)
        )
        period = "Every week" if interval == 1 else f"Every {interval} weeks"
        return f"{period} on {days} at {at}"
    if "days" in recurrence:
        numbers = sorted(day for day in recurrence["days"] if day != "last")
        names = [_ordinal(day) for day in numbers]
        if "last" in recurrence["days"]:
            names.append("last")
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        return f"Every month on the {listed} day at {at}"
    nth = recurrence["nth_weekday"]
    weekday = _FULL_DAY_NAMES[WEEKDAYS.index(nth["weekday"])]
    return f"Every month on the {_ORDINALS[nth['n']]} {weekday} at {at}"


def _ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"
