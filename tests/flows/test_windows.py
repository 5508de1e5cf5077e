from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.nodes.schedule.recurrence import WEEKDAYS
from flows.nodes.wait.windows import dynamic_target, is_open, next_open, resolve_window_tz, validate_window
from maestra.durations import parse_duration

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")
WORKDAYS = {
    "weekdays": ["mon", "tue", "wed", "thu", "fri"],
    "from": "10:00",
    "to": "18:00",
    "timezone": "flow",
}
FRIDAY_NIGHT = {"weekdays": ["fri"], "from": "22:00", "to": "06:00", "timezone": "flow"}


def berlin(*args, fold=0):
    return datetime(*args, tzinfo=BERLIN, fold=fold)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def opens(window, at, tz=BERLIN):
    return next_open(window, at=at, tz=tz)


# --------------------------------------------------------------------------- is_open / next_open


def test_it_includes_from_and_excludes_to():
    # 2026-06-01 is a Monday.
    assert not is_open(WORKDAYS, at=berlin(2026, 6, 1, 9, 59, 59), tz=BERLIN)
    assert is_open(WORKDAYS, at=berlin(2026, 6, 1, 10, 0), tz=BERLIN)
    assert is_open(WORKDAYS, at=berlin(2026, 6, 1, 17, 59, 59, 999999), tz=BERLIN)
    assert not is_open(WORKDAYS, at=berlin(2026, 6, 1, 18, 0), tz=BERLIN)
    assert not is_open(WORKDAYS, at=berlin(2026, 6, 6, 12, 0), tz=BERLIN)  # Saturday


def test_it_returns_the_moment_itself_when_already_open():
    at = berlin(2026, 6, 1, 12, 34, 56, 789)
    assert opens(WORKDAYS, at) == at
    assert opens(WORKDAYS, at).tzinfo is UTC


def test_it_waits_for_the_opening_later_the_same_day():
    assert opens(WORKDAYS, berlin(2026, 6, 1, 7, 0)) == berlin(2026, 6, 1, 10, 0)


def test_it_waits_for_the_next_listed_weekday():
    assert opens(WORKDAYS, berlin(2026, 6, 1, 18, 0)) == berlin(2026, 6, 2, 10, 0)
    # Friday evening → Monday morning.
    assert opens(WORKDAYS, berlin(2026, 6, 5, 19, 0)) == berlin(2026, 6, 8, 10, 0)
    # One listed day: up to a week later.
    sundays = {"weekdays": ["sun"], "from": "10:00", "to": "11:00", "timezone": "flow"}
    assert opens(sundays, berlin(2026, 6, 7, 11, 0)) == berlin(2026, 6, 14, 10, 0)


def test_it_reads_the_window_in_the_given_zone():
    # 07:00 UTC on a Monday is 16:00 in Tokyo: open there, not yet in Berlin (09:00).
    at = utc(2026, 6, 1, 7, 0)
    assert is_open(WORKDAYS, at=at, tz=TOKYO)
    assert not is_open(WORKDAYS, at=at, tz=BERLIN)
    assert opens(WORKDAYS, at, tz=NEW_YORK) == datetime(2026, 6, 1, 10, 0, tzinfo=NEW_YORK)


def test_it_keeps_an_overnight_window_with_the_weekday_it_opened_on():
    assert is_open(FRIDAY_NIGHT, at=berlin(2026, 6, 5, 22, 0), tz=BERLIN)  # Friday
    assert is_open(FRIDAY_NIGHT, at=berlin(2026, 6, 6, 5, 59), tz=BERLIN)  # Saturday morning
    assert not is_open(FRIDAY_NIGHT, at=berlin(2026, 6, 6, 6, 0), tz=BERLIN)
    assert not is_open(FRIDAY_NIGHT, at=berlin(2026, 6, 5, 3, 0), tz=BERLIN)  # Thursday's night: not listed
    assert not is_open(FRIDAY_NIGHT, at=berlin(2026, 6, 6, 23, 0), tz=BERLIN)  # Saturday evening
    assert opens(FRIDAY_NIGHT, berlin(2026, 6, 5, 3, 0)) == berlin(2026, 6, 5, 22, 0)
    assert opens(FRIDAY_NIGHT, berlin(2026, 6, 6, 5, 0)) == berlin(2026, 6, 6, 5, 0)
    assert opens(FRIDAY_NIGHT, berlin(2026, 6, 6, 7, 0)) == berlin(2026, 6, 12, 22, 0)


def test_it_chains_overnight_windows_on_consecutive_days():
    nights = {"weekdays": ["sat", "sun"], "from": "20:00", "to": "08:00", "timezone": "flow"}
    assert is_open(nights, at=berlin(2026, 6, 7, 7, 0), tz=BERLIN)  # Sunday morning, from Saturday
    assert not is_open(nights, at=berlin(2026, 6, 7, 12, 0), tz=BERLIN)
    assert is_open(nights, at=berlin(2026, 6, 8, 7, 0), tz=BERLIN)  # Monday morning, from Sunday
    assert not is_open(nights, at=berlin(2026, 6, 9, 7, 0), tz=BERLIN)


def test_it_treats_a_to_of_midnight_as_the_end_of_the_day():
    evenings = {"weekdays": ["mon"], "from": "20:00", "to": "00:00", "timezone": "flow"}
    assert is_open(evenings, at=berlin(2026, 6, 1, 23, 59), tz=BERLIN)
    assert not is_open(evenings, at=berlin(2026, 6, 2, 0, 0), tz=BERLIN)


def test_it_opens_all_day_when_from_equals_to():
    weekend = {"weekdays": ["sat", "sun"], "from": "09:00", "to": "09:00", "timezone": "flow"}
    assert is_open(weekend, at=berlin(2026, 6, 6, 0, 0), tz=BERLIN)
    assert is_open(weekend, at=berlin(2026, 6, 6, 8, 59), tz=BERLIN)
    assert is_open(weekend, at=berlin(2026, 6, 7, 23, 59, 59), tz=BERLIN)
    assert not is_open(weekend, at=berlin(2026, 6, 8, 0, 0), tz=BERLIN)
    assert opens(weekend, berlin(2026, 6, 3, 15, 0)) == berlin(2026, 6, 6, 0, 0)


def test_it_opens_at_the_end_of_the_spring_gap_when_from_is_inside_it():
    sundays = {"weekdays": ["sun"], "from": "02:30", "to": "18:00", "timezone": "flow"}
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST, so the clock is first past 02:30 at 03:00.
    assert opens(sundays, berlin(2026, 3, 29, 0, 0)) == berlin(2026, 3, 29, 3, 0) == utc(2026, 3, 29, 1, 0)
    assert not is_open(sundays, at=utc(2026, 3, 29, 0, 59, 59), tz=BERLIN)
    assert is_open(sundays, at=utc(2026, 3, 29, 1, 0), tz=BERLIN)


def test_it_skips_a_window_that_lies_entirely_in_the_spring_gap():
    sundays = {"weekdays": ["sun"], "from": "02:10", "to": "02:40", "timezone": "flow"}
    assert opens(sundays, berlin(2026, 3, 29, 0, 0)) == berlin(2026, 4, 5, 2, 10)


def test_it_closes_at_the_gap_when_to_is_inside_it():
    early = {"weekdays": ["sun"], "from": "01:00", "to": "02:30", "timezone": "flow"}
    assert is_open(early, at=utc(2026, 3, 29, 0, 59), tz=BERLIN)  # 01:59 CET
    assert not is_open(early, at=utc(2026, 3, 29, 1, 0), tz=BERLIN)  # 03:00 CEST


def test_it_opens_in_both_occurrences_of_the_autumn_hour():
    # 2026-10-25: 03:00 CEST goes back to 02:00 CET; 02:30–02:45 happens twice.
    short = {"weekdays": ["sun"], "from": "02:30", "to": "02:45", "timezone": "flow"}
    assert is_open(short, at=berlin(2026, 10, 25, 2, 40, fold=0), tz=BERLIN)
    assert is_open(short, at=berlin(2026, 10, 25, 2, 40, fold=1), tz=BERLIN)
    assert opens(short, berlin(2026, 10, 25, 1, 0)) == utc(2026, 10, 25, 0, 30)  # first 02:30
    # Between the two occurrences, the window opens again at the second 02:30.
    assert opens(short, berlin(2026, 10, 25, 2, 50, fold=0)) == utc(2026, 10, 25, 1, 30)
    assert opens(short, berlin(2026, 10, 25, 2, 50, fold=1)) == berlin(2026, 11, 1, 2, 30)


def test_it_keeps_the_wall_clock_opening_across_dst():
    # Saturday before the spring change → Sunday 10:00 CEST (08:00 UTC, not 09:00).
    weekend = {"weekdays": ["sun"], "from": "10:00", "to": "18:00", "timezone": "flow"}
    assert opens(weekend, berlin(2026, 3, 28, 20, 0)) == utc(2026, 3, 29, 8, 0)
    ny = opens(weekend, datetime(2026, 10, 31, 20, 0, tzinfo=NEW_YORK), tz=NEW_YORK)
    assert ny == utc(2026, 11, 1, 15, 0)  # 10:00 EST after the autumn change


def test_it_refuses_naive_moments_and_invalid_windows():
    with pytest.raises(ValueError):
        next_open(WORKDAYS, at=datetime(2026, 6, 1, 12, 0), tz=BERLIN)
    with pytest.raises(ValueError):
        is_open(WORKDAYS, at=datetime(2026, 6, 1, 12, 0), tz=BERLIN)
    with pytest.raises(ValueError, match="weekdays"):
        next_open({**WORKDAYS, "weekdays": []}, at=berlin(2026, 6, 1), tz=BERLIN)
    with pytest.raises(ValueError, match="from"):
        is_open({**WORKDAYS, "from": "25:00"}, at=berlin(2026, 6, 1), tz=BERLIN)


_windows = st.builds(
    lambda days, start, end: {"weekdays": days, "from": start, "to": end, "timezone": "flow"},
    st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=7, unique=True),
    st.sampled_from(["00:00", "01:30", "02:00", "02:30", "03:00", "09:00", "22:00", "23:45"]),
    st.sampled_from(["00:00", "02:15", "02:45", "03:00", "06:00", "18:00", "23:00"]),
)


@settings(max_examples=120, deadline=None)
@given(
    window=_windows,
    tz=st.sampled_from([BERLIN, NEW_YORK, ZoneInfo("Australia/Lord_Howe")]),
    at=st.builds(
        lambda year, change, minutes: datetime(year, *change, tzinfo=UTC) + timedelta(minutes=minutes),
        st.integers(2025, 2028),
        st.sampled_from([(3, 8), (3, 29), (4, 5), (10, 4), (10, 25), (11, 1), (6, 1)]),
        st.integers(-5 * 1440, 5 * 1440),
    ),
)
def test_next_open_is_open_and_nothing_earlier_is(window, tz, at):
    result = next_open(window, at=at, tz=tz)
    assert result >= at
    assert is_open(window, at=result, tz=tz)
    # Walk the time in between (this is a test: brute force is the point). Window
    # edges and the DST changes of these zones all sit on a 15-minute grid in UTC,
    # so is_open can only change at grid points: probing them is exhaustive.
    probe = at
    while probe < result:
        assert not is_open(window, at=probe, tz=tz), probe
        probe = (probe + timedelta(minutes=15)).replace(second=0, microsecond=0)
        probe -= timedelta(minutes=probe.minute % 15)
    # The opening is the very first second: a second earlier is closed.
    if result > at:
        assert not is_open(window, at=result - timedelta(seconds=1), tz=tz)


# --------------------------------------------------------------------------- time zones


def test_it_reads_the_window_in_the_flow_zone():
    assert resolve_window_tz(WORKDAYS, flow_tz="Europe/Berlin", customer_tz="Asia/Tokyo") == BERLIN
    no_zone = {key: value for key, value in WORKDAYS.items() if key != "timezone"}
    assert resolve_window_tz(no_zone, flow_tz="Europe/Berlin", customer_tz="Asia/Tokyo") == BERLIN


def test_it_reads_the_window_in_the_customer_zone():
    window = {**WORKDAYS, "timezone": "customer"}
    assert resolve_window_tz(window, flow_tz="Europe/Berlin", customer_tz="Asia/Tokyo") == TOKYO


@pytest.mark.parametrize("customer_tz", [None, "", "Mars/Olympus_Mons", "not a zone", "../etc/passwd"])
def test_it_falls_back_to_the_flow_zone_without_a_usable_customer_zone(customer_tz):
    window = {**WORKDAYS, "timezone": "customer"}
    assert resolve_window_tz(window, flow_tz="Europe/Berlin", customer_tz=customer_tz) == BERLIN


def test_it_reads_the_window_in_a_named_zone():
    window = {**WORKDAYS, "timezone": "America/New_York"}
    assert resolve_window_tz(window, flow_tz="Europe/Berlin", customer_tz="Asia/Tokyo") == NEW_YORK
    gone = {**WORKDAYS, "timezone": "Atlantis/Capital"}
    assert resolve_window_tz(gone, flow_tz="Europe/Berlin", customer_tz=None) == BERLIN


def test_it_refuses_an_unknown_flow_zone():
    with pytest.raises(ValueError):
        resolve_window_tz(WORKDAYS, flow_tz="Nowhere/Nothing", customer_tz=None)


def test_it_opens_a_customer_zone_window_at_the_customers_morning():
    window = {**WORKDAYS, "timezone": "customer"}
    tz = resolve_window_tz(window, flow_tz="Europe/Berlin", customer_tz="America/New_York")
    # Monday 12:00 in Berlin is 06:00 in New York: wait until 10:00 there (16:00 Berlin).
    assert opens(window, berlin(2026, 6, 1, 12, 0), tz=tz) == berlin(2026, 6, 1, 16, 0)


# --------------------------------------------------------------------------- validation


def test_it_accepts_valid_windows():
    assert validate_window(WORKDAYS) == []
    assert validate_window(FRIDAY_NIGHT) == []
    assert validate_window({**WORKDAYS, "timezone": "customer"}) == []
    assert validate_window({**WORKDAYS, "timezone": "Asia/Tokyo"}) == []
    assert validate_window({"weekdays": ["sun"], "from": "09:00", "to": "09:00"}) == []


@pytest.mark.parametrize(
    ("window", "path"),
    [
        (None, ""),
        ({**WORKDAYS, "weekdays": []}, "weekdays"),
        ({**WORKDAYS, "weekdays": ["someday"]}, "weekdays.0"),
        ({**WORKDAYS, "weekdays": ["mon", "mon"]}, "weekdays.1"),
        ({**WORKDAYS, "from": "24:00"}, "from"),
        ({**WORKDAYS, "to": "6pm"}, "to"),
        ({**WORKDAYS, "from": "9:00"}, "from"),
        ({**WORKDAYS, "timezone": "localtime"}, "timezone"),
        ({"weekdays": ["mon"], "to": "18:00"}, "from"),
        ({"weekdays": ["mon"], "from": "10:00"}, "to"),
        ({**WORKDAYS, "timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({**WORKDAYS, "timezone": ""}, "timezone"),
        ({**WORKDAYS, "timezone": None}, "timezone"),
        ({**WORKDAYS, "days": ["mon"]}, "days"),
    ],
)
def test_it_reports_bad_windows_with_a_field_path(window, path):
    problems = validate_window(window)
    assert path in [problem_path for problem_path, _ in problems], problems


# --------------------------------------------------------------------------- dynamic target


def test_it_reads_a_date_as_local_midnight():
    assert dynamic_target("2026-06-01", offset=None, tz=BERLIN) == utc(2026, 5, 31, 22, 0)
    assert dynamic_target("2026-06-01", offset=None, tz=NEW_YORK) == utc(2026, 6, 1, 4, 0)
    assert dynamic_target(date(2026, 1, 15), offset=None, tz=BERLIN) == utc(2026, 1, 14, 23, 0)


def test_it_moves_a_midnight_that_does_not_exist_forward():
    # Havana skips from 00:00 to 01:00 on 2026-03-08.
    havana = ZoneInfo("America/Havana")
    assert dynamic_target("2026-03-08", offset=None, tz=havana) == datetime(2026, 3, 8, 1, 0, tzinfo=havana)


def test_it_reads_an_aware_datetime_as_is():
    assert dynamic_target("2026-06-01T10:00:00+02:00", offset=None, tz=NEW_YORK) == utc(2026, 6, 1, 8, 0)
    assert dynamic_target("2026-06-01T10:00:00Z", offset=None, tz=BERLIN) == utc(2026, 6, 1, 10, 0)
    assert dynamic_target(utc(2026, 6, 1, 10, 0), offset=None, tz=BERLIN) == utc(2026, 6, 1, 10, 0)
    assert dynamic_target(" 2026-06-01 10:00:00+00:00 ", offset=None, tz=BERLIN) == utc(2026, 6, 1, 10, 0)


def test_it_reads_a_naive_datetime_as_local_time():
    assert dynamic_target("2026-06-01T10:00:00", offset=None, tz=BERLIN) == utc(2026, 6, 1, 8, 0)
    assert dynamic_target(datetime(2026, 6, 1, 10, 0), offset=None, tz=NEW_YORK) == utc(2026, 6, 1, 14, 0)
    # In the gap: forward by the gap; ambiguous: the first occurrence.
    assert dynamic_target("2026-03-29T02:30", offset=None, tz=BERLIN) == utc(2026, 3, 29, 1, 30)
    assert dynamic_target("2026-10-25T02:30", offset=None, tz=BERLIN) == utc(2026, 10, 25, 0, 30)


def test_it_returns_utc():
    assert dynamic_target("2026-06-01T10:00:00+02:00", offset=None, tz=BERLIN).tzinfo is UTC
    assert dynamic_target("2026-06-01", offset=parse_duration("P1D"), tz=BERLIN).tzinfo is UTC


def test_it_keeps_the_wall_time_when_a_day_offset_crosses_dst():
    # March 31 is CEST, March 28 is CET: three *days* earlier is still 10:00 local.
    target = dynamic_target("2026-03-31T10:00:00", offset=parse_duration("-P3D"), tz=BERLIN)
    assert target == berlin(2026, 3, 28, 10, 0) == utc(2026, 3, 28, 9, 0)
    # 72 *hours* earlier is exact, and reads 09:00 on the local clock.
    exact = dynamic_target("2026-03-31T10:00:00", offset=parse_duration("-PT72H"), tz=BERLIN)
    assert exact == utc(2026, 3, 28, 8, 0)
    # A birthday three days ahead of a date-only value: midnight local.
    assert dynamic_target("2026-11-01", offset=parse_duration("-P7D"), tz=BERLIN) == berlin(
        2026, 10, 25, 0, 0
    )


def test_it_applies_a_positive_offset():
    assert dynamic_target("2026-06-01", offset=parse_duration("P1DT2H"), tz=BERLIN) == berlin(
        2026, 6, 2, 2, 0
    )
    assert dynamic_target("2026-01-31", offset=parse_duration("P1M"), tz=BERLIN) == berlin(2026, 2, 28, 0, 0)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "not a date",
        "2026-13-01",
        "2026-02-30",
        "01/06/2026",
        "2026-06-01T25:00",
        20260601,
        1.5,
        True,
        [],
        {},
    ],
)
def test_it_returns_none_for_a_missing_or_unreadable_value(value):
    assert dynamic_target(value, offset=None, tz=BERLIN) is None
    assert dynamic_target(value, offset=parse_duration("-P3D"), tz=BERLIN) is None


def test_it_returns_none_when_the_offset_leaves_the_calendar():
    assert dynamic_target("9999-12-31", offset=parse_duration("P2D"), tz=BERLIN) is None
    assert dynamic_target("0001-01-01T00:00:00+00:00", offset=parse_duration("-PT1H"), tz=BERLIN) is None


@pytest.mark.parametrize(
    ("value", "tz"),
    [
        # Read fine, but the exit window's search overflowed the calendar (a tick-wide error).
        ("9999-12-31", BERLIN),
        ("9999-12-31T23:59:59+00:00", BERLIN),
        # Local midnight of year 1 east of UTC is in year 0 in UTC: OverflowError before.
        ("0001-01-01", ZoneInfo("Pacific/Kiritimati")),
        ("0999-12-31T12:00:00+00:00", BERLIN),
        ("3000-01-01", UTC),
    ],
)
def test_it_returns_none_for_targets_outside_the_years_1000_to_2999(value, tz):
    assert dynamic_target(value, offset=None, tz=tz) is None


def test_a_target_within_the_years_is_kept_even_after_a_century_offset():
    assert dynamic_target("2999-12-31", offset=None, tz=BERLIN) == berlin(2999, 12, 31, 0, 0)
    assert dynamic_target("1100-01-01", offset=parse_duration("-P100Y"), tz=UTC) == utc(1000, 1, 1, 0, 0)
    assert dynamic_target("2950-01-01", offset=parse_duration("P100Y"), tz=UTC) is None


def test_a_weekly_opening_lost_in_a_dst_gap_moves_to_the_next_week():
    # Sundays 02:00–02:15 in Berlin: on 2026-03-29 that time does not exist.
    window = {"weekdays": ["sun"], "from": "02:00", "to": "02:15", "timezone": "flow"}
    berlin = ZoneInfo("Europe/Berlin")
    after_last_opening = datetime(2026, 3, 22, 2, 15, tzinfo=berlin)
    assert next_open(window, at=after_last_opening, tz=berlin) == datetime(2026, 4, 5, 2, 0, tzinfo=berlin)
