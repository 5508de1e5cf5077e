"""Time zones: which names are zones, and how a naive wall time becomes a
moment. One home for both, so that a document, a customer's profile, a wait
window and the quiet hours agree on what "Europe/Berlin at 02:30" means.

Two rules for a wall time in a DST change, each used where it belongs:

- `localize` (schedules, durations, limitation windows): a wall time in the
  spring gap moves forward by the gap's length (02:30 → 03:30), an ambiguous
  one takes its first occurrence. "Every day at 02:30" still fires that day.
- `wall_moments` / `first_moment_at_or_after` (wait windows, quiet hours):
  when does the clock *reach* 02:30? In the gap it never shows, so the answer
  is the jump itself (03:00): a window opening at 02:30 is open from then on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

# Files in the system's zoneinfo directory that are not zones anyone lives
# in: "localtime" is this machine's zone, whatever that is.
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


@lru_cache(maxsize=1)
def known_zones() -> frozenset[str]:
    """Every IANA zone name the validators accept."""
    return frozenset(available_timezones()) - _NOT_ZONES


@lru_cache(maxsize=4096)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def zone_or_none(name: object) -> ZoneInfo | None:
    """The zone called `name`, or None for anything else (blank, unknown, not
    a string). Cached: a customer's unknown zone costs one lookup, not one per
    message."""
    if not isinstance(name, str) or not name:
        return None
    return _zone(name)


def localize(local: datetime, tz: ZoneInfo) -> datetime:
    """Attach `tz` to a naive wall time. A wall time that does not exist (the
    DST gap) moves forward by the gap; an ambiguous one takes the first
    occurrence (fold=0)."""
    aware = local.replace(tzinfo=tz, fold=0)
    # Round-trip through UTC: a non-existent time comes back different.
    back = aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
    if back != local:
        gap = aware.replace(fold=1).utcoffset() - aware.replace(fold=0).utcoffset()
        aware = (local + abs(gap)).replace(tzinfo=tz, fold=0)
    return aware


def wall_moments(wall: datetime, tz: ZoneInfo) -> list[datetime]:
    """The moments (UTC, in order) at which the clock of `tz` reaches the
    naive wall time `wall`: one normally, two when the wall time repeats
    (autumn), and the end of the gap when it never shows (spring)."""
    first = wall.replace(tzinfo=tz, fold=0)
    second = wall.replace(tzinfo=tz, fold=1)
    if first.utcoffset() == second.utcoffset():
        return [first.astimezone(UTC)]
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall:
        return [first.astimezone(UTC), second.astimezone(UTC)]
    # In the gap: fold=1 reads the wall time with the later (larger) offset,
    # which lands before the jump, fold=0 after it. Bisect to the jump in whole
    # seconds (zone transitions happen on whole seconds).
    low, high = int(second.timestamp()), int(first.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, tz).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return [datetime.fromtimestamp(high, UTC)]


def first_moment_at_or_after(wall: datetime, tz: ZoneInfo, *, after: datetime) -> datetime:
    """The first moment later than `after` at which the clock of `tz` reaches
    `wall` (the later one of a repeated hour only when the first is not
    later), as an aware UTC datetime."""
    moments = wall_moments(wall, tz)
    return next((moment for moment in moments if moment > after), moments[-1])
