"""maestra.zones: the one list of zone names and the wall-time rules that the
windows, the quiet hours, the schedules and the durations share."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from maestra.zones import first_moment_at_or_after, known_zones, localize, wall_moments, zone_or_none

BERLIN = ZoneInfo("Europe/Berlin")
SYDNEY = ZoneInfo("Australia/Sydney")  # southern hemisphere: the gap is in October


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_the_zone_list_has_real_zones_and_not_the_machines_own():
    zones = known_zones()
    assert {"Europe/Berlin", "UTC", "America/New_York"} <= zones
    assert not {"localtime", "posixrules", "Factory"} & zones


@pytest.mark.parametrize("name", [None, "", "Mars/Olympus", "../etc/passwd", 5, "Europe/Berlin\x00"])
def test_anything_but_a_zone_name_is_no_zone(name):
    assert zone_or_none(name) is None


def test_a_zone_name_is_its_zone():
    assert zone_or_none("Europe/Berlin") == BERLIN


@pytest.mark.parametrize(
    ("wall", "tz", "moments"),
    [
        # An ordinary day: one moment.
        (datetime(2026, 5, 5, 8, 0), BERLIN, [utc(2026, 5, 5, 6, 0)]),
        # The spring gap (29 March 2026, 02:00 → 03:00): 02:30 never shows;
        # the clock passes it at the jump.
        (datetime(2026, 3, 29, 2, 30), BERLIN, [utc(2026, 3, 29, 1, 0)]),
        # The repeated autumn hour (25 October 2026): both showings, in order.
        (datetime(2026, 10, 25, 2, 30), BERLIN, [utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)]),
        # The southern spring gap (4 October 2026, 02:00 → 03:00 in Sydney).
        (datetime(2026, 10, 4, 2, 15), SYDNEY, [utc(2026, 10, 3, 16, 0)]),
    ],
)
def test_the_clock_reaches_a_wall_time_at_these_moments(wall, tz, moments):
    assert wall_moments(wall, tz) == moments


@pytest.mark.parametrize(
    ("wall", "after", "moment"),
    [
        (datetime(2026, 5, 5, 8, 0), utc(2026, 5, 4, 20, 0), utc(2026, 5, 5, 6, 0)),
        # In the gap: the jump, whatever `after` says.
        (datetime(2026, 3, 29, 2, 30), utc(2026, 3, 28, 23, 30), utc(2026, 3, 29, 1, 0)),
        # A repeated hour: its first showing, or the second on the second pass.
        (datetime(2026, 10, 25, 2, 30), utc(2026, 10, 24, 23, 0), utc(2026, 10, 25, 0, 30)),
        (datetime(2026, 10, 25, 2, 30), utc(2026, 10, 25, 1, 10), utc(2026, 10, 25, 1, 30)),
    ],
)
def test_the_first_moment_after_picks_the_right_showing(wall, after, moment):
    assert first_moment_at_or_after(wall, BERLIN, after=after) == moment


def test_localize_moves_a_gap_forward_by_the_gap_and_takes_the_first_of_a_repeat():
    # The schedules' rule, unlike wall_moments: 02:30 in the gap is 03:30.
    assert localize(datetime(2026, 3, 29, 2, 30), BERLIN).astimezone(UTC) == utc(2026, 3, 29, 1, 30)
    repeated = localize(datetime(2026, 10, 25, 2, 30), BERLIN)
    assert repeated.fold == 0 and repeated.astimezone(UTC) == utc(2026, 10, 25, 0, 30)
    assert localize(datetime(2026, 5, 5, 8, 0), BERLIN).astimezone(UTC) == utc(2026, 5, 5, 6, 0)
