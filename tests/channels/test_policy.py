"""The communication policy across flows (channels/policy.py): quiet hours in
the customer's time zone and a cross-flow frequency cap, enforced by the
delivery worker's claim. The two-worker race is in test_policy_concurrency.py."""

import os
import subprocess
import sys
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.core.checks.registry import registry
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse

from channels.backends import Backend, Outcome, SendResult
from channels.checks import check_policy
from channels.delivery import claim_chunk, deliver_all_due, deliver_due
from channels.models import Message, Template
from channels.outbox import queue_messages
from channels.policy import (
    PERSONAL_CHANNELS,
    PolicyError,
    QuietHours,
    current_policy,
    parse_frequency_caps,
    parse_period,
    parse_quiet_hours,
)
from channels.sendtest import send_test
from customers.models import Channel, Customer
from flows.engine.tick import tick
from tests.channels.conftest import send_request, use_backend
from tests.flows import engine_kit as kit
from tests.flows.engine_kit import at

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def local(zone: ZoneInfo, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=zone)


# --- reading the settings ------------------------------------------------------


def test_quiet_hours_are_read_and_wrap_midnight():
    night = parse_quiet_hours("21:00-08:00")
    assert night == QuietHours(start=time(21), end=time(8)) and night.wraps
    assert str(night) == "21:00-08:00"
    # `from` inclusive, `to` exclusive.
    assert night.contains(time(21, 0)) and night.contains(time(23, 59)) and night.contains(time(0, 0))
    assert night.contains(time(7, 59, 59))
    assert not night.contains(time(8, 0)) and not night.contains(time(20, 59, 59))

    lunch = parse_quiet_hours(" 12:00 - 14:30 ")
    assert not lunch.wraps
    assert lunch.contains(time(12)) and lunch.contains(time(14, 29))
    assert not lunch.contains(time(14, 30)) and not lunch.contains(time(11, 59))

    assert (
        parse_quiet_hours("") is None and parse_quiet_hours("  ") is None and parse_quiet_hours(None) is None
    )


def test_frequency_caps_are_read():
    caps = parse_frequency_caps("email=3/P1D, sms = 1/P7D,web_push=2/PT12H,mobile_push=5/P1W")
    assert {channel: (cap.limit, cap.period, cap.text) for channel, cap in caps.items()} == {
        "email": (3, timedelta(days=1), "P1D"),
        "sms": (1, timedelta(days=7), "P7D"),
        "web_push": (2, timedelta(hours=12), "PT12H"),
        "mobile_push": (5, timedelta(weeks=1), "P1W"),
    }
    assert parse_frequency_caps("") == {} and parse_frequency_caps(None) == {}
    assert parse_period("P1DT12H") == timedelta(days=1, hours=12)
    # Every personal channel can be capped; webhooks go to your systems.
    assert set(PERSONAL_CHANNELS) == set(Channel.values) - {Channel.WEBHOOK}


# Settings the policy refuses, per parser: the value and the words of the error.
REFUSED = {
    parse_quiet_hours: [
        ("21:00", "not a range"),
        ("21:00-08:00-09:00", "not a range"),
        ("9pm-8am", "not a time HH:MM"),
        ("24:00-08:00", "not a time HH:MM"),
        ("21:00-8:00", "not a time HH:MM"),
        ("21:00-21:00", "starts and ends at the same time"),
    ],
    parse_frequency_caps: [
        ("email=3", "not channel=N/period"),
        ("email3/P1D", "not channel=N/period"),
        ("fax=1/P1D", "'fax' is not a channel a cap applies to"),
        ("webhook=1/P1D", "'webhook' is not a channel a cap applies to"),
        ("email=0/P1D", "at least 1"),
        ("email=-1/P1D", "at least 1"),
        ("email=two/P1D", "at least 1"),
        ("email=1/P1M", "months and years have no fixed length"),
        ("email=1/P1Y", "months and years have no fixed length"),
        ("email=1/PT0S", "longer than zero"),
        ("email=1/1d", "not an ISO 8601 duration"),
        ("email=1/P", "not an ISO 8601 duration"),
        ("email=1/P1D,email=2/P7D", "email is capped twice"),
    ],
    # A cap's period is a duration of fixed length.
    parse_period: [
        ("-P1D", "not an ISO 8601 duration"),
        ("+P1D", "not an ISO 8601 duration"),
        ("PT1.5S", "not an ISO 8601 duration"),
        ("P1Y2M", "months and years have no fixed length"),
        # The bound of every duration (maestra.durations): before, a huge
        # period overflowed a timedelta at start with no word on the setting.
        ("P36501D", "'P36501D' must be at most 100 years"),
        ("P99999999999999W", "must be at most 100 years"),
    ],
}


@pytest.mark.parametrize(
    ("parse", "value", "message"),
    [
        pytest.param(parse, value, message, id=f"{parse.__name__}({value})")
        for parse, cases in REFUSED.items()
        for value, message in cases
    ],
)
def test_bad_policy_settings_are_refused(parse, value, message):
    with pytest.raises(PolicyError, match=message):
        parse(value)


def test_a_cap_period_is_read_as_a_duration_of_fixed_length():
    assert parse_period("P1W2DT3H4M5S") == timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MAESTRA_QUIET_HOURS", "22-7", "MAESTRA_QUIET_HOURS='22-7': the start '22' is not a time HH:MM"),
        ("MAESTRA_FREQUENCY_CAPS", "email=3/P1M", "MAESTRA_FREQUENCY_CAPS='email=3/P1M': 'P1M': months"),
        ("MAESTRA_QUIET_HOURS_TIMEZONE", "Mars/Base", "'Mars/Base' is not an IANA time zone"),
    ],
)
def test_a_bad_setting_stops_the_process_at_start(name, value, message):
    env = {**os.environ, name: value, "DJANGO_SETTINGS_MODULE": "maestra.settings"}
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr and message in done.stderr


def test_the_policy_check_is_a_registered_system_check(settings):
    # manage.py check lists every bad value, each with its own id.
    assert check_policy in registry.get_checks()
    settings.MAESTRA_QUIET_HOURS = "late"
    settings.MAESTRA_QUIET_HOURS_TIMEZONE = "Mars/Base"
    settings.MAESTRA_FREQUENCY_CAPS = "email=lots"
    errors = registry.run_checks()
    assert [error.id for error in errors if error.id.startswith("channels.")] == [
        "channels.E001",
        "channels.E002",
        "channels.E003",
    ]
    assert "MAESTRA_QUIET_HOURS_TIMEZONE='Mars/Base'" in errors[1].msg
    settings.MAESTRA_QUIET_HOURS = "21:00-08:00"
    settings.MAESTRA_QUIET_HOURS_TIMEZONE = "Europe/Berlin"
    settings.MAESTRA_FREQUENCY_CAPS = "email=2/P1D"
    assert check_policy() == []


def test_a_bad_value_set_at_runtime_fails_loudly(settings):
    settings.MAESTRA_FREQUENCY_CAPS = "email=lots"
    with pytest.raises(ImproperlyConfigured, match="MAESTRA_FREQUENCY_CAPS='email=lots'"):
        current_policy()
    settings.MAESTRA_FREQUENCY_CAPS = "email=2/P1D"
    assert current_policy().caps["email"].limit == 2


def test_the_fallback_zone_is_the_setting_else_time_zone(settings):
    settings.MAESTRA_QUIET_HOURS = "21:00-08:00"
    settings.TIME_ZONE = "Asia/Tokyo"
    settings.MAESTRA_QUIET_HOURS_TIMEZONE = ""
    assert current_policy().default_tz.key == "Asia/Tokyo"
    settings.MAESTRA_QUIET_HOURS_TIMEZONE = "Europe/Berlin"
    assert current_policy().default_tz.key == "Europe/Berlin"


# --- the end of the quiet hours, DST included ------------------------------------


@pytest.mark.parametrize(
    ("quiet", "now", "end"),
    [
        # Evening: the end is tomorrow morning; after midnight: this morning.
        ("21:00-08:00", local(BERLIN, 2026, 5, 4, 22, 0), local(BERLIN, 2026, 5, 5, 8, 0)),
        ("21:00-08:00", local(BERLIN, 2026, 5, 5, 3, 0), local(BERLIN, 2026, 5, 5, 8, 0)),
        ("12:00-14:00", local(BERLIN, 2026, 5, 5, 12, 0), local(BERLIN, 2026, 5, 5, 14, 0)),
        # Spring forward (29 March 2026 in Berlin): the night is an hour
        # shorter, the end is still 08:00 on the wall.
        ("21:00-08:00", local(BERLIN, 2026, 3, 28, 22, 0), utc(2026, 3, 29, 6, 0)),
        # Fall back (25 October 2026): an hour longer.
        ("21:00-08:00", local(BERLIN, 2026, 10, 24, 22, 0), utc(2026, 10, 25, 7, 0)),
        # An end inside the spring gap (02:30 never shows): the end of the gap.
        ("01:00-02:30", local(BERLIN, 2026, 3, 29, 1, 30), utc(2026, 3, 29, 1, 0)),
        # An end in the repeated autumn hour: its first showing …
        ("00:00-02:30", utc(2026, 10, 24, 23, 0), utc(2026, 10, 25, 0, 30)),
        # … or, on the second pass through that hour, the second.
        ("00:00-02:30", utc(2026, 10, 25, 1, 10), utc(2026, 10, 25, 1, 30)),
    ],
)
def test_the_quiet_hours_end_in_wall_time(quiet, now, end):
    hours = parse_quiet_hours(quiet)
    assert hours.contains(now.astimezone(BERLIN).time())
    assert hours.end_after(now, BERLIN) == end.astimezone(UTC)


# --- the outbox -----------------------------------------------------------------

_runs = iter(range(1, 1_000_000))


def queue(
    customer_id: int, template: str, *, channel: str = "email", flow_id: int = 1, expires_at=None
) -> int:
    request = send_request(
        customer_id,
        template,
        channel,
        run_id=next(_runs),
        node_key="s",
        flow_id=flow_id,
        expires_at=expires_at,
    )
    result = queue_messages(requests=[request])[request.key]
    assert result.status == Message.Status.QUEUED, result
    return result.id


def row(message_id: int) -> Message:
    return Message.objects.get(id=message_id)


@pytest.fixture
def templates(make_template, http_server):
    make_template("promo", purpose="marketing")
    make_template("promo2", purpose="marketing")
    make_template("receipt", purpose="service")
    make_template("sms_promo", channel="sms", purpose="marketing")
    make_template("hook", channel="webhook", purpose="marketing", url=http_server.url())


@pytest.fixture
def quiet(settings, templates):
    settings.MAESTRA_QUIET_HOURS = "21:00-08:00"
    settings.MAESTRA_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.TIME_ZONE = "UTC"


@pytest.fixture
def subscribed(make_customer):
    def make(**fields) -> Customer:
        return make_customer(subscriptions={"email": "subscribed", "sms": "subscribed"}, **fields)

    return make


pytestmark = pytest.mark.django_db


def test_a_message_due_in_quiet_hours_waits_for_their_end_then_goes(quiet, subscribed):
    ann = subscribed(timezone="Europe/Berlin")
    with at(local(BERLIN, 2026, 5, 4, 22, 0)):
        message = queue(ann.id, "promo")
        assert deliver_due() == {
            "claimed": 0,
            "sent": 0,
            "retried": 0,
            "failed": 0,
            "expired": 0,
            "deferred": 1,
        }
    held = row(message)
    assert held.status == "queued" and held.attempts == 0 and held.lease_until is None
    assert held.next_attempt_at == local(BERLIN, 2026, 5, 5, 8, 0)
    assert held.reason == "quiet_hours: waiting for the end of 21:00-08:00 in Europe/Berlin"
    assert mail.outbox == []

    with at(local(BERLIN, 2026, 5, 5, 7, 59, 59)):
        assert deliver_all_due()["claimed"] == 0
    with at(local(BERLIN, 2026, 5, 5, 8, 0)):
        assert deliver_all_due() == {"claimed": 1, "sent": 1, "retried": 0, "failed": 0, "expired": 0}
    sent = row(message)
    assert (sent.status, sent.reason, sent.attempts) == ("sent", "", 1)
    assert sent.sent_at == local(BERLIN, 2026, 5, 5, 8, 0)
    assert len(mail.outbox) == 1


@pytest.mark.parametrize(
    ("wall", "held_until"),
    [
        ((2026, 5, 5, 3, 0), (2026, 5, 5, 8, 0)),  # after midnight: this morning
        ((2026, 5, 4, 21, 0), (2026, 5, 5, 8, 0)),  # the first minute
        ((2026, 5, 5, 7, 59), (2026, 5, 5, 8, 0)),  # the last minute
        ((2026, 5, 5, 8, 0), None),  # over
        ((2026, 5, 4, 20, 59), None),  # not yet
        ((2026, 5, 4, 12, 0), None),
    ],
)
def test_quiet_hours_wrap_midnight(quiet, subscribed, wall, held_until):
    ann = subscribed(timezone="Europe/Berlin")
    with at(local(BERLIN, *wall)):
        message = queue(ann.id, "promo")
        deliver_all_due()
    if held_until is None:
        assert row(message).status == "sent"
    else:
        assert row(message).status == "queued"
        assert row(message).next_attempt_at == local(BERLIN, *held_until)


def test_daytime_quiet_hours_do_not_wrap(settings, templates, subscribed):
    settings.MAESTRA_QUIET_HOURS = "12:00-14:00"
    ann = subscribed(timezone="Europe/Berlin")
    with at(local(BERLIN, 2026, 5, 4, 11, 59)):
        early = queue(ann.id, "promo")
        deliver_all_due()
    with at(local(BERLIN, 2026, 5, 4, 13, 0)):
        lunch = queue(ann.id, "promo")
        deliver_all_due()
    assert row(early).status == "sent"
    assert row(lunch).next_attempt_at == local(BERLIN, 2026, 5, 4, 14, 0)


def test_the_customers_own_zone_wins_and_blank_or_unknown_zones_fall_back(quiet, settings, subscribed):
    berlin = subscribed(timezone="Europe/Berlin")
    new_york = subscribed(timezone="America/New_York")
    blank = subscribed(timezone="")
    unknown = subscribed()
    Customer.objects.filter(id=unknown.id).update(timezone="Mars/Base")  # the zone database changed
    now = utc(2026, 5, 4, 20, 30)  # 22:30 in Berlin, 16:30 in New York, 20:30 UTC

    with at(now):
        ids = {c: queue(c.id, "promo") for c in (berlin, new_york, blank, unknown)}
        counts = deliver_all_due()
    assert counts["sent"] == 3 and counts["deferred"] == 1
    assert row(ids[berlin]).next_attempt_at == local(BERLIN, 2026, 5, 5, 8, 0)
    assert {row(ids[c]).status for c in (new_york, blank, unknown)} == {"sent"}

    # The fallback zone: MAESTRA_QUIET_HOURS_TIMEZONE, else TIME_ZONE.
    settings.MAESTRA_QUIET_HOURS_TIMEZONE = "Europe/Berlin"
    with at(now):
        ids = {c: queue(c.id, "promo") for c in (new_york, blank, unknown)}
        deliver_all_due()
    assert row(ids[new_york]).status == "sent"
    for c in (blank, unknown):
        assert row(ids[c]).next_attempt_at == local(BERLIN, 2026, 5, 5, 8, 0)
        assert row(ids[c]).reason.endswith("in Europe/Berlin")

    settings.MAESTRA_QUIET_HOURS_TIMEZONE = ""
    settings.TIME_ZONE = "Asia/Tokyo"  # 05:30 tomorrow there
    with at(now):
        message = queue(blank.id, "promo")
        deliver_all_due()
    assert row(message).next_attempt_at == local(ZoneInfo("Asia/Tokyo"), 2026, 5, 5, 8, 0)


def test_quiet_hours_follow_dst(quiet, subscribed):
    ann = subscribed(timezone="Europe/Berlin")
    bob = subscribed(timezone="America/New_York")
    # Saturday 28 March 2026, 22:00 in Berlin (CET); Berlin springs forward that night.
    with at(utc(2026, 3, 28, 21, 0)):
        spring = queue(ann.id, "promo")
        deliver_all_due()
    assert row(spring).next_attempt_at == utc(2026, 3, 29, 6, 0)  # 08:00 CEST

    # New York falls back on 1 November 2026: 08:00 EST is 13:00 UTC.
    with at(local(NEW_YORK, 2026, 10, 31, 23, 0)):
        autumn = queue(bob.id, "promo")
        deliver_all_due()
    assert row(autumn).next_attempt_at == utc(2026, 11, 1, 13, 0)


def test_a_message_whose_relevance_ends_before_the_quiet_hours_is_not_sent(quiet, subscribed):
    ann = subscribed(timezone="Europe/Berlin")
    morning = local(BERLIN, 2026, 5, 5, 8, 0)
    with at(local(BERLIN, 2026, 5, 4, 22, 0)):
        stale = queue(ann.id, "promo", expires_at=morning - timedelta(minutes=1))
        exactly = queue(ann.id, "promo", expires_at=morning)
        fine = queue(ann.id, "promo", expires_at=morning + timedelta(minutes=1))
        unbounded = queue(ann.id, "promo")
        counts = deliver_all_due()
    assert (counts["not_sent"], counts["deferred"], counts["claimed"]) == (2, 2, 0)
    for message in (stale, exactly):
        refused = row(message)
        assert (refused.status, refused.attempts) == ("not_sent", 0)
        assert refused.reason == (
            "quiet_hours: 21:00-08:00 in Europe/Berlin would end after the message's relevance"
        )
    assert {row(m).next_attempt_at for m in (fine, unbounded)} == {morning}

    with at(morning):
        assert deliver_all_due()["sent"] == 2
    assert mail.outbox and len(mail.outbox) == 2


def test_service_messages_webhooks_and_retries(quiet, subscribed, http_server):
    ann = subscribed(timezone="Europe/Berlin")
    with at(local(BERLIN, 2026, 5, 4, 23, 0)):
        receipt = queue(ann.id, "receipt")
        hook = queue(ann.id, "hook", channel="webhook")
        counts = deliver_all_due()
    assert counts["sent"] == 2 and "deferred" not in counts
    assert row(receipt).status == row(hook).status == "sent"
    assert len(http_server.requests) == 1


def test_a_retry_due_in_quiet_hours_waits_too(quiet, settings, subscribed):
    ann = subscribed(timezone="Europe/Berlin")
    use_backend(settings, f"{__name__}.Busy")
    Busy.results = [SendResult(outcome=Outcome.RETRY, reason="http_503")]
    with at(local(BERLIN, 2026, 5, 4, 20, 58)):
        message = queue(ann.id, "promo")
        assert deliver_due()["retried"] == 1  # again at 21:03, inside the quiet hours
    assert row(message).next_attempt_at == local(BERLIN, 2026, 5, 4, 21, 3)
    with at(local(BERLIN, 2026, 5, 4, 21, 3)):
        assert deliver_due()["deferred"] == 1
    assert (row(message).attempts, row(message).next_attempt_at) == (1, local(BERLIN, 2026, 5, 5, 8, 0))
    with at(local(BERLIN, 2026, 5, 5, 8, 0)):
        assert deliver_due()["sent"] == 1
    assert row(message).attempts == 2


class Busy(Backend):
    """Answers from `results`, then accepts."""

    results: list[SendResult] = []

    def send(self, message):
        return Busy.results.pop(0) if Busy.results else SendResult(outcome=Outcome.SENT, provider_id="ok")


# --- the frequency cap -------------------------------------------------------------


@pytest.fixture
def capped(settings, templates):
    settings.MAESTRA_FREQUENCY_CAPS = "email=1/P1D"


T0 = utc(2026, 5, 4, 10, 0)


def test_one_marketing_email_a_day_across_flows(capped, subscribed):
    ann, bob = subscribed(), subscribed()
    with at(T0):
        first = queue(ann.id, "promo", flow_id=1)
        second = queue(ann.id, "promo2", flow_id=2)
        other = queue(bob.id, "promo2", flow_id=2)
        counts = deliver_all_due()
    assert (counts["sent"], counts["not_sent"]) == (2, 1)
    assert row(first).status == row(other).status == "sent"
    refused = row(second)
    assert (refused.status, refused.reason, refused.attempts) == (
        "not_sent",
        "frequency_cap: 1 email per P1D reached",
        0,
    )
    assert refused.sent_at is None and refused.lease_until is None
    assert sorted(m.to for m in mail.outbox) == sorted([[ann.email], [bob.email]])


def test_the_command_prints_what_the_policy_held_back(capped, subscribed):
    import io

    from django.core.management import call_command

    ann = subscribed()
    with at(T0):
        queue(ann.id, "promo", flow_id=1)
        queue(ann.id, "promo2", flow_id=2)
        out = io.StringIO()
        call_command("deliver_messages", stdout=out)
    # Held-back rows are not claimed for sending: they are counted apart.
    assert (
        out.getvalue().strip()
        == "claimed=1 sent=1 retried=0 failed=0 expired=0 released=0 deferred=0 not_sent=1"
    )


def test_the_window_rolls(capped, subscribed):
    ann = subscribed()
    with at(T0):
        queue(ann.id, "promo")
        deliver_all_due()
    with at(T0 + timedelta(hours=23, minutes=59)):
        late = queue(ann.id, "promo")
        deliver_all_due()
    with at(T0 + timedelta(days=1)):
        next_day = queue(ann.id, "promo")
        deliver_all_due()
    with at(T0 + timedelta(days=1, seconds=1)):
        same_window = queue(ann.id, "promo")
        deliver_all_due()
    assert row(late).reason.startswith("frequency_cap")
    assert row(next_day).status == "sent"
    assert row(same_window).status == "not_sent"


def test_the_cap_is_per_channel_and_counts_in_claim_order(settings, templates, subscribed):
    settings.MAESTRA_FREQUENCY_CAPS = "email=2/P7D,sms=1/P1D"
    ann = subscribed()
    with at(T0):
        emails = [queue(ann.id, "promo") for _ in range(3)]
        texts = [queue(ann.id, "sms_promo", channel="sms") for _ in range(2)]
        counts = deliver_all_due()
    assert (counts["sent"], counts["not_sent"]) == (3, 2)
    assert [row(m).status for m in emails] == ["sent", "sent", "not_sent"]
    assert [row(m).status for m in texts] == ["sent", "not_sent"]
    assert row(texts[1]).reason == "frequency_cap: 1 sms per P1D reached"


def test_service_messages_neither_count_nor_are_capped(capped, subscribed):
    ann = subscribed()
    with at(T0):
        receipts = [queue(ann.id, "receipt") for _ in range(3)]
        promo = queue(ann.id, "promo")
        deliver_all_due()
    assert [row(m).status for m in [*receipts, promo]] == ["sent"] * 4


def test_test_sends_neither_count_nor_are_capped(capped, subscribed):
    ann = subscribed()
    promo = Template.objects.get(slug="promo")
    with at(T0):
        assert send_test(template=promo, customer=ann).status == "sent"
        first = queue(ann.id, "promo")
        deliver_all_due()
        assert send_test(template=promo, customer=ann).status == "sent"
        second = queue(ann.id, "promo")
        deliver_all_due()
    assert (row(first).status, row(second).status) == ("sent", "not_sent")
    assert Message.objects.filter(is_test=True, marketing=True).count() == 0


@pytest.mark.parametrize("held", ["sending", "claimed"])
def test_a_message_a_worker_holds_counts(capped, subscribed, held):
    """Being sent, or claimed by another worker and about to be."""
    ann = subscribed()
    with at(T0):
        mid_send = queue(ann.id, "promo")
        Message.objects.filter(id=mid_send).update(status=held, lease_until=T0 + timedelta(minutes=5))
        waiting = queue(ann.id, "promo")
        deliver_due()
    assert row(waiting).reason.startswith("frequency_cap")


def test_a_claim_given_back_unsent_counts_no_more(capped, subscribed):
    """A worker claimed the one message the cap allows and died: when its
    lease ends the claim is released, and the message (not the next one) goes."""
    ann = subscribed()
    with at(T0):
        claimed = queue(ann.id, "promo")
        claim_chunk(now=T0, size=1)
        later = queue(ann.id, "promo")
        Message.objects.filter(id=later).update(next_attempt_at=T0 + timedelta(seconds=1))
    with at(T0 + timedelta(seconds=901)):
        deliver_all_due()
    assert (row(claimed).status, row(later).status) == ("sent", "not_sent")
    assert row(later).reason.startswith("frequency_cap")


def test_failed_and_refused_messages_do_not_count(capped, subscribed):
    ann = subscribed()
    with at(T0):
        for status in ("failed", "not_sent"):
            Message.objects.filter(id=queue(ann.id, "promo")).update(status=status, sent_at=T0)
        Message.objects.filter(id=queue(ann.id, "promo")).update(next_attempt_at=T0 + timedelta(days=9))
        message = queue(ann.id, "promo")
        deliver_all_due()
    assert row(message).status == "sent"


def test_quiet_hours_then_the_cap(settings, templates, subscribed):
    """Deferred messages do not use up the cap; the morning sends one."""
    settings.MAESTRA_QUIET_HOURS = "21:00-08:00"
    settings.MAESTRA_FREQUENCY_CAPS = "email=1/P1D"
    ann = subscribed(timezone="Europe/Berlin")
    with at(local(BERLIN, 2026, 5, 4, 22, 0)):
        night = [queue(ann.id, "promo"), queue(ann.id, "promo2")]
        assert deliver_all_due()["deferred"] == 2
    with at(local(BERLIN, 2026, 5, 5, 8, 0)):
        counts = deliver_all_due()
    assert (counts["sent"], counts["not_sent"]) == (1, 1)
    assert [row(m).status for m in night] == ["sent", "not_sent"]


# --- the worker's loop ---------------------------------------------------------------


def test_a_chunk_the_policy_held_entirely_does_not_end_the_round(quiet, settings, subscribed):
    settings.MAESTRA_DELIVERY_CHUNK = 2
    ann = subscribed(timezone="Europe/Berlin")
    bob = subscribed(timezone="America/New_York")  # 16:00 there: not quiet
    with at(local(BERLIN, 2026, 5, 4, 22, 0)):
        held = [queue(ann.id, "promo") for _ in range(5)]  # the first chunks: all held
        # Later in the same (marketing) lane: sendable. A service receipt
        # would not do here: its lane is claimed first.
        receipts = [queue(bob.id, "promo") for _ in range(2)]
        assert deliver_due(limit=3) == {
            "claimed": 0,
            "sent": 0,
            "retried": 0,
            "failed": 0,
            "expired": 0,
            "deferred": 3,
        }
        counts = deliver_all_due()
    assert (counts["deferred"], counts["sent"]) == (2, 2)
    assert {row(m).status for m in held} == {"queued"} and {row(m).status for m in receipts} == {"sent"}


def test_the_policy_is_set_based_per_chunk(settings, templates, make_customer):
    settings.MAESTRA_QUIET_HOURS = "21:00-08:00"
    settings.MAESTRA_FREQUENCY_CAPS = "email=1/P1D"
    zones = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "", "UTC"]
    customers = [
        make_customer(subscriptions={"email": "subscribed"}, timezone=zones[i % len(zones)])
        for i in range(40)
    ]
    with at(utc(2026, 5, 4, 20, 30)):
        for c in customers:
            queue(c.id, "promo")
            queue(c.id, "promo2")
        # Every chunk holds customers of all five zones.
        small_chunk = _claim_queries(size=10)
        big_chunk = _claim_queries(size=40)
    assert small_chunk == big_chunk, (small_chunk, big_chunk)


def _claim_queries(*, size: int) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        rows, held = claim_chunk(now=utc(2026, 5, 4, 20, 30), size=size)
    assert rows and held["deferred"] and held["not_sent"]
    return len(captured.captured_queries)


def test_without_a_policy_the_claim_reads_nothing_more(templates, subscribed, django_assert_num_queries):
    ann = subscribed()
    queue(ann.id, "promo")
    # Savepoint, one select per lane (service, marketing), consent (the
    # chunk's subscriptions), update, release, read back: nothing for the policy.
    with django_assert_num_queries(7):
        claim_chunk(now=datetime.now(UTC) + timedelta(seconds=1), size=10)


# --- two flows through the engine -------------------------------------------------------


def two_flows(relevance: str = "P1D"):
    kit.email_templates("promo_a", "promo_b", purpose=Template.Purpose.MARKETING)
    for name, template in (("A", "promo_a"), ("B", "promo_b")):
        kit.launch(
            kit.document(
                [
                    kit.event_start("order_created"),
                    kit.steps("mail", kit.send(template), relevance=relevance),
                ],
                kit.chain("start", "mail"),
                name=f"Flow {name}",
            )
        )
    from flows.models import Flow

    return list(Flow.objects.order_by("id"))


def test_the_cap_holds_across_two_flows_started_by_one_event(settings):
    settings.MAESTRA_FREQUENCY_CAPS = "email=1/P1D"
    flow_a, flow_b = two_flows()
    ann = kit.customer("ann", subscriptions={"email": "subscribed"})
    with at(T0):
        kit.post_event(ann, occurred_at=T0)
        counts = tick()
    assert counts["messages.sent"] == 1 and counts["messages.not_sent"] == 1
    statuses = sorted((m.status, m.reason) for m in kit.messages_of(flow_a) + kit.messages_of(flow_b))
    assert statuses == [("not_sent", "frequency_cap: 1 email per P1D reached"), ("sent", "")]
    # Both runs launched: a message the cap refused is still an attempt.
    assert [r.launched for r in kit.runs_of(flow_a) + kit.runs_of(flow_b)] == [True, True]

    with at(T0 + timedelta(days=1)):
        kit.post_event(ann, occurred_at=T0 + timedelta(days=1))
        counts = tick()
    assert counts["messages.sent"] == 1 and counts["messages.not_sent"] == 1


EVENING = local(BERLIN, 2026, 5, 4, 22, 0)  # quiet hours in Berlin


def ann_orders_in_the_evening() -> None:
    """Ann, who lives in Berlin, orders at EVENING: both flows start for her."""
    ann = kit.customer("ann", subscriptions={"email": "subscribed"}, timezone="Europe/Berlin")
    kit.post_event(ann, occurred_at=EVENING)


def test_quiet_hours_through_the_engine_keep_the_relevance(settings):
    """A steps node relevant for two hours at 22:00: its messages would wait
    until 08:00, past their relevance, so they are not sent."""
    settings.MAESTRA_QUIET_HOURS = "21:00-08:00"
    flow_a, flow_b = two_flows(relevance="PT2H")
    with at(EVENING):
        ann_orders_in_the_evening()
        tick()
    messages = kit.messages_of(flow_a) + kit.messages_of(flow_b)
    assert [m.expires_at for m in messages] == [EVENING + timedelta(hours=2)] * 2
    assert {(m.status, m.reason.split(":")[0]) for m in messages} == {("not_sent", "quiet_hours")}
    assert [r.launched for r in kit.runs_of(flow_a) + kit.runs_of(flow_b)] == [True, True]


def test_a_deferred_message_from_the_engine_goes_in_the_morning(settings):
    settings.MAESTRA_QUIET_HOURS = "21:00-08:00"
    flow_a, _flow_b = two_flows(relevance="P1D")
    with at(EVENING):
        ann_orders_in_the_evening()
        assert tick()["messages.deferred"] == 2
    (message,) = kit.messages_of(flow_a)
    assert message.expires_at == EVENING + timedelta(days=1)
    assert message.next_attempt_at == local(BERLIN, 2026, 5, 5, 8, 0)
    with at(local(BERLIN, 2026, 5, 5, 8, 0)):
        assert tick()["messages.sent"] == 2


# --- the admin --------------------------------------------------------------------------


def test_the_outbox_admin_filters_by_reason_code(admin_client, capped, subscribed):
    ann = subscribed()
    with at(T0):
        queue(ann.id, "promo")
        queue(ann.id, "promo2")
        deliver_all_due()
    url = reverse("admin:channels_message_changelist")
    response = admin_client.get(url, {"reason_code": "frequency_cap"})
    assert [m.template_slug for m in response.context["cl"].result_list] == ["promo2"]
    response = admin_client.get(url, {"marketing__exact": "1", "status__exact": "sent"})
    assert [m.template_slug for m in response.context["cl"].result_list] == ["promo"]
