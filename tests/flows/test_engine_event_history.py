"""Event history in rules (SPEC §13) in running flows: a condition and a
start filter that count the customer's events, counted back from the run's
clock (the trigger event's time), not from the moment the engine runs."""

from datetime import timedelta

import pytest

from flows.engine.tick import tick
from flows.models import Run
from tests.flows import engine_kit as kit
from tests.flows.engine_kit import at, document, edge, event_start, node, send, steps, utc

NOW = utc(2026, 6, 1, 9, 0)
TWICE_IN_30_DAYS = {"event": "order_created", "where": None, "within": "P30D", "op": "count_gte", "value": 2}


@pytest.fixture
def mails(db):
    kit.email_templates("yes-mail", "no-mail")


def _flow(rule: dict, **start) -> int:
    return kit.launch(
        document(
            [
                event_start("order_created", **start),
                node("check", "condition", rule=rule),
                steps("yes-step", send("yes-mail")),
                steps("no-step", send("no-mail")),
            ],
            [edge("start", "check"), edge("check", "yes-step", "yes"), edge("check", "no-step", "no")],
        )
    )


def _order(customer_id: int, occurred_at, **payload) -> None:
    with at(NOW):
        kit.post_event(customer_id, occurred_at=occurred_at, payload=payload)
        tick(deliver=False)


def _answer(run: Run) -> str:
    return dict((key, port) for key, port, _ in kit.path_of(run))["check"]


@pytest.mark.django_db
def test_a_condition_counts_the_customers_orders_including_the_trigger(mails):
    with at(NOW):
        flow = _flow(TWICE_IN_30_DAYS)
        ann = kit.customer("ann")
    _order(ann, NOW - timedelta(days=1))
    _order(ann, NOW)
    assert [_answer(run) for run in kit.runs_of(flow, ann)] == ["no", "yes"]


@pytest.mark.django_db
def test_a_where_reads_the_counted_events_payload(mails):
    big_orders = {**TWICE_IN_30_DAYS, "where": {"field": "event.total", "op": "gte", "value": 100}}
    with at(NOW):
        flow = _flow(big_orders)
        ann = kit.customer("ann")
    _order(ann, NOW - timedelta(days=2), total=150)
    _order(ann, NOW - timedelta(days=1), total=20)
    _order(ann, NOW, total=300)
    assert [_answer(run) for run in kit.runs_of(flow, ann)] == ["no", "no", "yes"]


@pytest.mark.django_db
def test_the_window_counts_back_from_the_runs_clock(mails):
    with at(NOW):
        flow = _flow(TWICE_IN_30_DAYS, max_age="P90D")
        ann = kit.customer("ann")
    _order(ann, NOW - timedelta(days=5))  # the run's clock is 5 days ago: one order by then
    # Ingested late: an order of 45 days ago, then one of 40 days ago. At the
    # latter's clock two orders lie within 30 days; counted from now, only the
    # one of 5 days ago would (the two old ones are outside [now - 30 days, now]).
    _order(ann, NOW - timedelta(days=45))
    _order(ann, NOW - timedelta(days=40))
    assert [_answer(run) for run in kit.runs_of(flow, ann)] == ["no", "no", "yes"]


@pytest.mark.django_db
def test_a_start_filter_counts_events_too(mails):
    with at(NOW):
        flow = _flow({"field": "customer.email", "op": "exists"}, filter={**TWICE_IN_30_DAYS, "within": None})
        ann = kit.customer("ann")
    _order(ann, NOW - timedelta(hours=2))
    _order(ann, NOW - timedelta(hours=1))
    assert [run.stop_reason for run in kit.runs_of(flow, ann)] == ["filter_failed", ""]
