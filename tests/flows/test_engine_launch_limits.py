"""Per-customer launch limits (SPEC §6, §8): once, every time with a total cap,
periodic counted from the last successful step, the atomic re-check, failed
groups that are no launch, and launch records that survive every edit."""

from datetime import timedelta

import pytest

from channels.models import Message
from customers.models import PromoCode, PromoPool
from flows.engine.tick import tick
from flows.models import LaunchRecord, Run
from tests.flows import engine_kit as kit
from tests.flows.engine_kit import at, chain, document, event_start, node, steps, utc
from tests.flows.engine_kit import launch_limit as limit
from tests.flows.engine_kit import send as send_step

SESSION_ENDED = "session_ended"
AUG_10 = utc(2026, 8, 10, 13, 0)
AUG_13 = utc(2026, 8, 13, 13, 0)


def seed_example(launch_limit: dict) -> dict:
    """The help page's example: an email when the session ends, a promo code three days later."""
    return document(
        [
            event_start(SESSION_ENDED),
            steps("email", send_step("welcome")),
            node("three_days", "wait", mode="fixed", duration="P3D"),
            steps("promo", {"action": "issue_promo_code", "pool": "summer"}),
        ],
        chain("start", "email", "three_days", "promo"),
        launch_limit=launch_limit,
    )


def one_email(launch_limit: dict) -> dict:
    return document(
        [event_start(SESSION_ENDED), steps("email", send_step("welcome"))],
        chain("start", "email"),
        launch_limit=launch_limit,
    )


def promo_only(pool: str, launch_limit: dict) -> dict:
    return document(
        [event_start(SESSION_ENDED), steps("promo", {"action": "issue_promo_code", "pool": pool})],
        chain("start", "promo"),
        launch_limit=launch_limit,
    )


def relaunch_at(moment, flow, doc: dict):
    with at(moment):
        return kit.relaunch(flow, doc)


def end_session(customer_id: int, moment, *, times: int = 1) -> dict:
    """`times` session_ended events of the customer at `moment`, one tick; its counts."""
    with at(moment):
        for _ in range(times):
            kit.post_event(customer_id, SESSION_ENDED, occurred_at=moment)
        return tick(deliver=False)


@pytest.fixture
def blocks(db):
    kit.email_templates("welcome")
    kit.promo_pool("summer", codes=20)


def record(flow, customer_id) -> LaunchRecord:
    return LaunchRecord.objects.get(flow=flow, customer_id=customer_id)


# --- Periodic: the seed example -------------------------------------------------------------


@pytest.mark.django_db
def test_it_counts_the_period_from_the_last_successful_step(blocks):
    flow, ann = kit.launch_at(AUG_10, seed_example(limit("periodic", "P7D")), "ann")
    end_session(ann, AUG_10)
    first = kit.runs_of(flow, ann)[0]
    assert first.status == Run.Status.WAITING
    assert first.due_at == AUG_13
    assert record(flow, ann).last_step_at == AUG_10
    assert [m.template_slug for m in kit.messages_of(flow, ann)] == ["welcome"]

    # Between the two groups: blocked, and the run in progress goes on regardless.
    end_session(ann, utc(2026, 8, 12, 9, 0))
    kit.tick_at(AUG_13)
    first.refresh_from_db()
    assert first.status == Run.Status.COMPLETED
    assert PromoCode.objects.filter(customer_id=ann).count() == 1
    assert record(flow, ann).last_step_at == AUG_13  # the promo code moved the block
    assert record(flow, ann).launches == 1  # two groups in one run are one launch

    # Aug 17 13:00 would have been free after the email alone; the promo code
    # moved the end of the block to Aug 20 13:00 — exactly, not a minute earlier.
    end_session(ann, utc(2026, 8, 17, 13, 0))
    end_session(ann, utc(2026, 8, 20, 12, 59))
    end_session(ann, utc(2026, 8, 20, 13, 0))

    runs = kit.runs_of(flow, ann)
    assert [(run.status, run.stop_reason) for run in runs] == [
        (Run.Status.COMPLETED, ""),
        (Run.Status.STOPPED, "frequency_limit"),  # Aug 12, between the groups
        (Run.Status.STOPPED, "frequency_limit"),  # Aug 17 13:00
        (Run.Status.STOPPED, "frequency_limit"),  # Aug 20 12:59
        (Run.Status.WAITING, ""),  # Aug 20 13:00: allowed again
    ]
    # Refused at the door: the start node's pass records why, nothing else ran.
    assert kit.path_of(runs[1]) == [("start", "", "frequency_limit")]
    assert kit.path_of(runs[4]) == [("start", "next", ""), ("email", "next", "")]
    assert len(kit.messages_of(flow, ann)) == 2
    assert record(flow, ann).launches == 2
    assert record(flow, ann).last_step_at == utc(2026, 8, 20, 13, 0)

    stats = kit.stats_of(flow)
    assert stats[("start", "entered")] == 5
    assert stats[("start", "stop:frequency_limit")] == 3
    assert stats[("start", "exit:next")] == 2
    assert stats[("email", "entered")] == 2
    assert stats[("promo", "exit:next")] == 1


@pytest.mark.django_db
def test_it_refuses_re_entry_until_exactly_the_end_of_the_period_after_one_group(blocks):
    flow, ann, bob = kit.launch_at(AUG_10, one_email(limit("periodic", "P7D")), "ann", "bob")
    end_session(ann, AUG_10)
    end_session(bob, AUG_10 + timedelta(days=3))  # another customer is not blocked by ann
    end_session(ann, utc(2026, 8, 17, 12, 59, 59))
    end_session(ann, utc(2026, 8, 17, 13, 0))
    assert [run.stop_reason for run in kit.runs_of(flow, ann)] == ["", "frequency_limit", ""]
    assert [run.stop_reason for run in kit.runs_of(flow, bob)] == [""]


# --- Once ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_once_never_launches_again(blocks):
    flow, ann = kit.launch_at(AUG_10, one_email(limit("once")), "ann")
    end_session(ann, AUG_10)
    end_session(ann, AUG_10 + timedelta(days=400))
    runs = kit.runs_of(flow, ann)
    assert [(run.status, run.stop_reason) for run in runs] == [
        (Run.Status.COMPLETED, ""),
        (Run.Status.STOPPED, "frequency_limit"),
    ]
    assert len(kit.messages_of(flow, ann)) == 1
    assert record(flow, ann).launches == 1


@pytest.mark.django_db
def test_once_launches_one_of_two_events_arriving_in_the_same_tick(blocks):
    """Both pass the entry check (no launch yet); the atomic re-check before
    the first steps group lets exactly one of them launch."""
    flow, ann = kit.launch_at(AUG_10, one_email(limit("once")), "ann")
    counts = end_session(ann, AUG_10, times=2)
    assert counts["events.runs_started"] == 2  # both got through the door
    runs = kit.runs_of(flow, ann)
    assert sorted((run.status, run.stop_reason) for run in runs) == [
        (Run.Status.COMPLETED, ""),
        (Run.Status.STOPPED, "frequency_limit"),
    ]
    loser = next(run for run in runs if run.stop_reason)
    # Stopped at the steps node, not at the door.
    assert kit.path_of(loser) == [("start", "next", ""), ("email", "", "frequency_limit")]
    assert len(kit.messages_of(flow, ann)) == 1
    assert record(flow, ann).launches == 1
    assert kit.stats_of(flow)[("email", "stop:frequency_limit")] == 1


@pytest.mark.django_db
def test_once_counts_a_message_recorded_as_not_sent_as_a_launch(blocks):
    """An attempt was made: an unsubscribed customer launched the flow."""
    flow, ann = kit.launch_at(
        AUG_10, one_email(limit("once")), "ann", subscriptions={"email": "unsubscribed"}
    )
    end_session(ann, AUG_10)
    end_session(ann, AUG_10 + timedelta(days=1))
    [message] = kit.messages_of(flow, ann)
    assert message.status == Message.Status.NOT_SENT
    assert [run.stop_reason for run in kit.runs_of(flow, ann)] == ["", "frequency_limit"]
    assert record(flow, ann).launches == 1


# --- Every time, with a total cap ------------------------------------------------------------


@pytest.mark.django_db
def test_every_time_launches_each_time_up_to_the_total_cap(blocks):
    flow, ann = kit.launch_at(AUG_10, one_email(limit("every_time", max_total=2)), "ann")
    for day in range(3):
        end_session(ann, AUG_10 + timedelta(days=day))
    assert [run.stop_reason for run in kit.runs_of(flow, ann)] == ["", "", "frequency_limit"]
    assert record(flow, ann).launches == 2
    assert len(kit.messages_of(flow, ann)) == 2


@pytest.mark.django_db
def test_every_time_without_a_cap_never_refuses(blocks):
    flow, ann = kit.launch_at(AUG_10, one_email(limit("every_time")), "ann")
    end_session(ann, AUG_10, times=3)
    end_session(ann, AUG_10 + timedelta(minutes=1))
    assert [run.status for run in kit.runs_of(flow, ann)] == [Run.Status.COMPLETED] * 4
    assert record(flow, ann).launches == 4


@pytest.mark.django_db
def test_the_total_cap_is_rechecked_atomically_for_simultaneous_entries(blocks):
    flow, ann = kit.launch_at(AUG_10, one_email(limit("every_time", max_total=2)), "ann")
    end_session(ann, AUG_10, times=3)
    assert sorted(run.stop_reason for run in kit.runs_of(flow, ann)) == ["", "", "frequency_limit"]
    assert record(flow, ann).launches == 2


# --- A failed group is not a launch ------------------------------------------------------------


@pytest.mark.django_db
def test_a_run_whose_only_group_fails_on_the_spot_is_not_a_launch(blocks):
    kit.promo_pool("empty")
    doc = promo_only("empty", limit("once"))
    flow, ann = kit.launch_at(AUG_10, doc, "ann")
    end_session(ann, AUG_10)
    [failed] = kit.runs_of(flow, ann)
    assert (failed.status, failed.stop_reason, failed.launched) == (
        Run.Status.STOPPED,
        "promo_pool_empty",
        False,
    )
    assert kit.path_of(failed) == [("start", "next", ""), ("promo", "", "promo_pool_empty")]
    assert record(flow, ann).launches == 0
    assert record(flow, ann).last_step_at is None
    assert kit.stats_of(flow)[("promo", "stop:promo_pool_empty")] == 1

    # Not a launch, so a `once` flow lets the customer in again.
    PromoCode.objects.create(pool=PromoPool.objects.get(slug="empty"), code="LATE")
    end_session(ann, AUG_10 + timedelta(hours=1))
    second = kit.runs_of(flow, ann)[1]
    assert (second.status, second.launched) == (Run.Status.COMPLETED, True)
    assert PromoCode.objects.get(code="LATE").customer_id == ann
    assert record(flow, ann).launches == 1
    assert record(flow, ann).last_step_at == AUG_10 + timedelta(hours=1)


@pytest.mark.django_db
def test_a_failed_group_sends_nothing_of_what_it_queued(blocks):
    # [email, promo code] with an empty pool: the group failed, it is no
    # launch, so the email it queued must not reach the customer either —
    # or a `once` flow would e-mail on every event.
    kit.promo_pool("empty")
    doc = document(
        [
            event_start(SESSION_ENDED),
            steps("group", send_step("welcome"), {"action": "issue_promo_code", "pool": "empty"}),
        ],
        chain("start", "group"),
        launch_limit=limit("once"),
    )
    flow, ann = kit.launch_at(AUG_10, doc, "ann")
    end_session(ann, AUG_10)
    end_session(ann, AUG_10 + timedelta(hours=1))
    assert [(m.status, m.reason) for m in kit.messages_of(flow, ann)] == [
        (Message.Status.NOT_SENT, "group_failed"),
        (Message.Status.NOT_SENT, "group_failed"),
    ]
    assert record(flow, ann).launches == 0
    with at(AUG_10 + timedelta(hours=2)):
        tick()
    assert all(m.status == Message.Status.NOT_SENT for m in kit.messages_of(flow, ann))


@pytest.mark.django_db
def test_a_failed_group_gives_back_only_its_own_launch_and_keeps_the_earlier_block(blocks):
    """A periodic flow: a later run that fails on the spot restores the
    previous last step, so the block still counts from the earlier success."""
    pool = kit.promo_pool("scarce", codes=1)
    doc = promo_only("scarce", limit("periodic", "P1D"))
    flow, ann = kit.launch_at(AUG_10, doc, "ann")
    end_session(ann, AUG_10)  # takes the only code
    end_session(ann, AUG_10 + timedelta(days=2))  # pool empty: fails
    assert [run.stop_reason for run in kit.runs_of(flow, ann)] == ["", "promo_pool_empty"]
    assert record(flow, ann).launches == 1
    assert record(flow, ann).last_step_at == AUG_10
    PromoCode.objects.create(pool=pool, code="MORE")
    end_session(ann, AUG_10 + timedelta(days=2, hours=1))
    assert kit.runs_of(flow, ann)[2].status == Run.Status.COMPLETED
    assert record(flow, ann).launches == 2


# --- Launch records survive edits ----------------------------------------------------------------


@pytest.mark.django_db
def test_switching_once_to_every_time_only_lets_in_customers_who_never_launched(blocks):
    """SPEC §6 and the help page: "if you later select Every time or
    Periodically instead, this will only apply to new customers and customers
    who have previously completed the flow will not re-enter it"."""
    flow, ann, bob = kit.launch_at(AUG_10, one_email(limit("once")), "ann", "bob")
    end_session(ann, AUG_10)
    flow = relaunch_at(AUG_10 + timedelta(days=1), flow, one_email(limit("every_time")))
    end_session(ann, AUG_10 + timedelta(days=2))  # launched under Once: stays out
    end_session(bob, AUG_10 + timedelta(days=2))  # never launched: every time now
    end_session(bob, AUG_10 + timedelta(days=3))
    assert [run.stop_reason for run in kit.runs_of(flow, ann)] == ["", "frequency_limit"]
    assert [run.stop_reason for run in kit.runs_of(flow, bob)] == ["", ""]
    assert record(flow, ann).launches == 1
    assert record(flow, bob).launches == 2


def email_after_an_hour(launch_limit: dict) -> dict:
    return document(
        [
            event_start(SESSION_ENDED),
            node("hour", "wait", mode="fixed", duration="PT1H"),
            steps("email", send_step("welcome")),
        ],
        chain("start", "hour", "email"),
        launch_limit=launch_limit,
    )


@pytest.mark.django_db
def test_a_run_in_flight_across_the_switch_is_rechecked_with_the_once_rule_too(blocks):
    """Two runs of Ann enter under Once before either launched (both wait an
    hour). The first launches; then the flow switches to Every time; the second
    reaches its steps under the new version and is refused at the re-check,
    as it would have been at entry: Ann launched while Once was in force.
    Bob, who never launched under Once, launches under Every time."""
    t0 = AUG_10
    flow, ann, bob = kit.launch_at(AUG_10, email_after_an_hour(limit("once")), "ann", "bob")
    end_session(ann, t0)
    end_session(ann, t0 + timedelta(minutes=30))  # no launch yet: enters too, waits
    kit.tick_at(t0 + timedelta(hours=1))  # the first run launches
    flow = relaunch_at(t0 + timedelta(hours=1, minutes=10), flow, email_after_an_hour(limit("every_time")))
    end_session(bob, t0 + timedelta(hours=1, minutes=20))
    kit.tick_at(t0 + timedelta(hours=2, minutes=30))  # Ann's second run and Bob's run reach the email
    assert [run.stop_reason for run in kit.runs_of(flow, ann)] == ["", "frequency_limit"]
    assert [run.stop_reason for run in kit.runs_of(flow, bob)] == [""]
    assert record(flow, ann).launches == 1
    assert record(flow, bob).launches == 1
    assert len(kit.messages_of(flow, ann)) == 1


@pytest.mark.parametrize(
    ("before", "after", "sessions_on_days", "stop_reasons"),
    [
        pytest.param(
            limit("once"),
            limit("periodic", "P1D"),
            [30],
            ["", "frequency_limit"],
            id="once-to-periodic-keeps-earlier-customers-out",
        ),
        pytest.param(
            limit("periodic", "P7D"),
            limit("periodic", "P7D"),
            [2, 7],
            ["", "frequency_limit", ""],
            id="an-edit-that-keeps-the-limit-keeps-the-records",
        ),
        pytest.param(
            limit("every_time"),
            limit("once"),
            [2],
            ["", "frequency_limit"],
            id="every-time-to-once-blocks-everybody-who-launched",
        ),
    ],
)
@pytest.mark.django_db
def test_launch_records_survive_an_edit_of_the_limit(blocks, before, after, sessions_on_days, stop_reasons):
    """A session on AUG_10, the edit a day later, then sessions on the given days."""
    flow, ann = kit.launch_at(AUG_10, one_email(before), "ann")
    end_session(ann, AUG_10)
    flow = relaunch_at(AUG_10 + timedelta(days=1), flow, one_email(after))
    for day in sessions_on_days:
        end_session(ann, AUG_10 + timedelta(days=day))
    assert [run.stop_reason for run in kit.runs_of(flow, ann)] == stop_reasons


@pytest.mark.django_db
def test_audience_entry_keeps_customers_who_launched_under_once_out_too(blocks):
    """The same rule for runs entered from a segment (INSERT … SELECT)."""
    from flows.engine.entry import start_flow_for_segment

    flow, ann, bob = kit.launch_at(AUG_10, one_email(limit("once")), "ann", "bob")
    with at(AUG_10):
        kit.static_segment("both", [ann, bob])
    end_session(ann, AUG_10)
    with at(AUG_10 + timedelta(days=1)):
        flow = kit.relaunch(flow, one_email(limit("every_time")))
        assert start_flow_for_segment(flow=flow, segment_slug="both") == 1
        tick(deliver=False)
    assert [run.status for run in kit.runs_of(flow, ann)] == [Run.Status.COMPLETED]
    assert [run.status for run in kit.runs_of(flow, bob)] == [Run.Status.COMPLETED]


@pytest.mark.django_db
def test_a_failed_attempt_under_once_does_not_count_as_launched_under_once(blocks):
    """A launch given back leaves no first launch behind (flows/engine/launch_limits.py)."""
    pool = kit.promo_pool("late", codes=0)
    doc = promo_only("late", limit("once"))
    flow, ann = kit.launch_at(AUG_10, doc, "ann")
    end_session(ann, AUG_10)  # empty pool: no launch
    with at(AUG_10 + timedelta(days=1)):
        doc["launch_limit"] = limit("every_time")
        flow = kit.relaunch(flow, doc)
    PromoCode.objects.bulk_create([PromoCode(pool=pool, code=f"L{index}") for index in range(2)])
    end_session(ann, AUG_10 + timedelta(days=2))  # first real launch, under every_time
    end_session(ann, AUG_10 + timedelta(days=3))
    assert [run.stop_reason for run in kit.runs_of(flow, ann)] == ["promo_pool_empty", "", ""]
