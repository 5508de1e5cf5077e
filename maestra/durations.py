"""ISO 8601 durations that keep the difference between "a day" and "24 hours".

`P1D` keeps the local wall time across a DST change (10:00 stays 10:00);
`PT24H` is exactly 86,400 seconds. Libraries that turn durations into a
`timedelta` lose that difference, hence this small module.

Every duration is at most 100 years either way (SPEC §12, "bounds at the
door"): `parse_duration` refuses longer ones, so whatever accepted a duration
(a flow document, a rule's `within_last`, a setting) can add it to any moment
of this century without leaving the calendar or overflowing a timedelta.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta

# localize lives with the zones; importable from here as before.
from maestra.zones import localize

# The longest duration anything accepts, measured like Duration.approximate()
# (a year is 365 days, a month 30): P100Y, P1200M, P36500D, PT876000H.
MAX_DAYS = 365 * 100
MAX_DURATION = timedelta(days=MAX_DAYS)
TOO_LONG = "must be at most 100 years"
# More digits than this in one part is longer than 100 years in any unit
# (36,500 days are 3,153,600,000 seconds); checked before int() so that a
# 5,000-digit number costs nothing and never hits Python's int-size limit.
_MAX_DIGITS = 10

_PATTERN = re.compile(
    r"^(?P<sign>[+-])?P"
    r"(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


@dataclass(frozen=True)
class Duration:
    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: float = 0
    negative: bool = False

    @property
    def calendar_part(self) -> relativedelta:
        return relativedelta(years=self.years, months=self.months, days=self.weeks * 7 + self.days)

    @property
    def exact_part(self) -> timedelta:
        return timedelta(hours=self.hours, minutes=self.minutes, seconds=self.seconds)

    def approximate(self) -> timedelta:
        """A plain timedelta (months as 30 days), for ordering and display only."""
        days = self.years * 365 + self.months * 30 + self.weeks * 7 + self.days
        total = timedelta(days=days) + self.exact_part
        return -total if self.negative else total

    def add_to(self, moment: datetime, tz: ZoneInfo) -> datetime:
        """`moment` plus (or minus) this duration: calendar parts in local wall
        time of `tz`, time parts exactly. Returns an aware UTC datetime."""
        if moment.tzinfo is None or moment.utcoffset() is None:
            # astimezone() would silently read a naive moment in the server's zone.
            raise ValueError("add_to needs an aware datetime")
        sign = -1 if self.negative else 1
        result = moment
        if self.calendar_part:
            local = moment.astimezone(tz).replace(tzinfo=None)
            local = local + sign * self.calendar_part
            result = localize(local, tz)
        result = result.astimezone(UTC) + sign * self.exact_part
        return result

    def __str__(self) -> str:
        return format_duration(self)


def parse_duration(text: str) -> Duration:
    """Parse an ISO 8601 duration ("P1D", "PT24H", "-P3D", "P1W", "P1Y2M") of
    at most 100 years either way. Raises ValueError (TOO_LONG for a longer one)."""
    if not isinstance(text, str):
        raise ValueError("a duration must be an ISO 8601 string such as P1D or PT2H")
    match = _PATTERN.match(text.strip())
    if not match or text.strip() in ("P", "+P", "-P"):
        raise ValueError(f"{text!r} is not an ISO 8601 duration (e.g. P1D, PT2H30M, -P3D)")
    parts = match.groupdict()
    numbers = [value for name, value in parts.items() if name != "sign" and value]
    if any(len(number.split(".")[0]) > _MAX_DIGITS for number in numbers):
        raise ValueError(TOO_LONG)
    duration = Duration(
        years=int(parts["years"] or 0),
        months=int(parts["months"] or 0),
        weeks=int(parts["weeks"] or 0),
        days=int(parts["days"] or 0),
        hours=int(parts["hours"] or 0),
        minutes=int(parts["minutes"] or 0),
        seconds=float(parts["seconds"] or 0),
        negative=parts["sign"] == "-",
    )
    # In plain numbers: approximate() itself would overflow a timedelta first.
    days = duration.years * 365 + duration.months * 30 + duration.weeks * 7 + duration.days
    seconds = days * 86400 + duration.hours * 3600 + duration.minutes * 60 + duration.seconds
    if seconds > MAX_DAYS * 86400:
        raise ValueError(TOO_LONG)
    return duration


def format_duration(duration: Duration) -> str:
    date = "".join(
        f"{value}{unit}"
        for value, unit in (
            (duration.years, "Y"),
            (duration.months, "M"),
            (duration.weeks, "W"),
            (duration.days, "D"),
        )
        if value
    )
    seconds = int(duration.seconds) if float(duration.seconds).is_integer() else duration.seconds
    time = "".join(
        f"{value}{unit}"
        for value, unit in ((duration.hours, "H"), (duration.minutes, "M"), (seconds, "S"))
        if value
    )
    text = "P" + date + (f"T{time}" if time else "")
    if text == "P":
        text = "PT0S"
    return ("-" if duration.negative else "") + text
