"""Condition nodes in running flows (SPEC §5): yes/no rules on customer
fields, the trigger event and subscriptions; branches on one attribute with
values and inclusive numeric ranges, first match wins, no match → other;
a port with no edge ends the run, completed."""

import pytest

from flows.engine.entry import start_flow_for_segment
from flows.engine.tick import tick
from flows.models import Run
from tests.flows import engine_kit as kit
from tests.flows.engine_kit import at, document, edge, event_start, node, send, steps, utc

NOW = utc(2026, 6, 1, 9, 0)


@pytest.fixture
def mails(db):
    kit.email_templates("yes-mail", "no-mail")


def yes_no(rule: dict) -> dict:
    return document(
        [
            event_start("order_created"),
            node("check", "condition", rule=rule),
            steps("yes-step", send("yes-mail")),
            steps("no-step", send("no-mail")),
        ],
        [edge("start", "check"), edge("check", "yes-step", "yes"), edge("check", "no-step", "no")],
    )


def enter(flow, customer_id, **payload) -> Run:
    kit.post_and_tick(NOW, customer_id, payload=payload)
    return kit.runs_of(flow, customer_id)[-1]


def answer(run: Run) -> str:
    return dict((key, port) for key, port, _ in kit.path_of(run))["check"]


def answers_for(rule: dict, **profiles: dict) -> tuple:
    """A yes/no flow on `rule` and one customer per profile (by external id),
    each entering once in turn: (flow, {id: customer id}, {id: the answer})."""
    with at(NOW):
        flow = kit.launch(yes_no(rule))
        ids = {external_id: kit.customer(external_id, **profile) for external_id, profile in profiles.items()}
    return flow, ids, {external_id: answer(enter(flow, ids[external_id])) for external_id in ids}


@pytest.mark.django_db
def test_a_rule_on_a_customer_field(mails):
    flow, ids, answers = answers_for(
        {"field": "customer.fields.tier", "op": "eq", "value": "gold"},
        gold={"fields": {"tier": "gold"}},
        silver={"fields": {"tier": "silver"}},
        none={},
    )
    assert answers == {"gold": "yes", "silver": "no", "none": "no"}
    assert [m.template_slug for m in kit.messages_of(flow, ids["gold"])] == ["yes-mail"]
    assert [m.template_slug for m in kit.messages_of(flow, ids["silver"])] == ["no-mail"]
    stats = kit.stats_of(flow)
    assert (stats[("check", "entered")], stats[("check", "exit:yes")], stats[("check", "exit:no")]) == (
        3,
        1,
        2,
    )
    assert stats[("yes-step", "entered")] == 1


@pytest.mark.django_db
def test_a_rule_on_the_trigger_event_payload(mails):
    flow, ann = kit.launch_at(NOW, yes_no({"field": "event.order.total", "op": "gte", "value": 100}), "ann")
    assert answer(enter(flow, ann, order={"total": 100})) == "yes"  # gte is inclusive
    assert answer(enter(flow, ann, order={"total": 99.5})) == "no"
    assert answer(enter(flow, ann, order={"total": "500"})) == "no"  # a string is not a number
    assert answer(enter(flow, ann)) == "no"


@pytest.mark.django_db
def test_each_run_reads_its_own_trigger_event(mails):
    """Two runs of one customer in one batch, different payloads."""
    with at(NOW):
        flow = kit.launch(yes_no({"field": "event.total", "op": "gte", "value": 100}))
        ann = kit.customer("ann")
        kit.post_event(ann, occurred_at=NOW, payload={"total": 500})
        kit.post_event(ann, occurred_at=NOW, payload={"total": 5})
        tick(deliver=False)
    assert [answer(run) for run in kit.runs_of(flow, ann)] == ["yes", "no"]


@pytest.mark.django_db
def test_a_rule_on_a_subscription(mails):
    consent = {"sub": "subscribed", "pending": "requires_confirmation"}
    profiles = {external_id: {"subscriptions": {"email": status}} for external_id, status in consent.items()}
    rule = {"field": "subscription.email", "op": "eq", "value": "subscribed"}
    _, _, answers = answers_for(rule, **profiles, never={})
    assert answers == {"sub": "yes", "pending": "no", "never": "no"}


@pytest.mark.django_db
def test_a_rule_reads_the_customer_as_they_are_when_the_run_gets_there(mails):
    from customers.services import set_field

    doc = document(
        [
            event_start("order_created"),
            node("wait", "wait", mode="fixed", duration="PT1H"),
            node("check", "condition", rule={"field": "customer.fields.vip", "op": "eq", "value": True}),
        ],
        [edge("start", "wait"), edge("wait", "check")],
    )
    flow, ann = kit.launch_at(NOW, doc, "ann")
    run = enter(flow, ann)
    set_field(customer_ids=[ann], field="vip", value=True)
    kit.tick_at(utc(2026, 6, 1, 10, 0))
    run.refresh_from_db()
    assert answer(run) == "yes"


# --- Branches ----------------------------------------------------------------------------------

SPENT_BRANCHES = [
    {"name": "vip", "values": [{"min": 1000}]},
    {"name": "mid", "values": [{"min": 100, "max": 999.99}]},
    {"name": "picked", "values": [50, 75]},
    {"name": "low", "values": [{"max": 100}]},
]


def branches(attribute: str, branch_list: list[dict]) -> dict:
    """A condition with branches; only the first branch is wired (to a steps node)."""
    return document(
        [
            event_start("order_created"),
            node("check", "condition", attribute=attribute, branches=branch_list),
            steps("first", send("yes-mail")),
        ],
        [edge("start", "check"), edge("check", "first", branch_list[0]["name"])],
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("spent", "port"),
    [
        (5000, "vip"),
        (1000, "vip"),  # min is inclusive
        (999.99, "mid"),  # max is inclusive
        (100, "mid"),  # in mid and in low: the first match wins
        (75, "picked"),  # also <= 100: first match wins
        (50.0, "picked"),  # 50.0 equals 50
        (60, "low"),
        (-3, "low"),
        ("5000", "other"),  # a string never falls in a numeric range
        (None, "other"),
        (True, "other"),
    ],
)
def test_branches_take_the_first_matching_value_or_range(mails, spent, port):
    flow, ann = kit.launch_at(
        NOW, branches("customer.fields.spent", SPENT_BRANCHES), "ann", fields={"spent": spent}
    )
    run = enter(flow, ann)
    assert answer(run) == port
    # Only "vip" is wired: every other port ends the run there, completed.
    assert run.status == Run.Status.COMPLETED
    assert len(kit.messages_of(flow, ann)) == (1 if port == "vip" else 0)
    assert kit.stats_of(flow)[("check", f"exit:{port}")] == 1


@pytest.mark.django_db
def test_branches_on_text_values_and_a_missing_attribute(mails):
    tiers = [
        {"name": "top", "values": ["gold", "platinum"]},
        {"name": "middle", "values": ["silver"]},
    ]
    with at(NOW):
        flow = kit.launch(branches("customer.fields.tier", tiers))
        ids = {
            tier: kit.customer(tier, fields={"tier": tier})
            for tier in ("gold", "platinum", "silver", "bronze")
        }
        missing = kit.customer("missing")
    assert {tier: answer(enter(flow, cid)) for tier, cid in ids.items()} == {
        "gold": "top",
        "platinum": "top",
        "silver": "middle",
        "bronze": "other",
    }
    assert answer(enter(flow, missing)) == "other"
    stats = kit.stats_of(flow)
    assert (
        stats[("check", "exit:top")],
        stats[("check", "exit:middle")],
        stats[("check", "exit:other")],
    ) == (2, 1, 2)


@pytest.mark.django_db
def test_branches_on_the_trigger_event(mails):
    flow, ann = kit.launch_at(NOW, branches("event.total", SPENT_BRANCHES), "ann")
    assert answer(enter(flow, ann, total=2000)) == "vip"
    assert answer(enter(flow, ann, total=10)) == "low"
    assert answer(enter(flow, ann)) == "other"


@pytest.mark.django_db
def test_an_event_rule_in_a_run_without_a_trigger_event_answers_no(mails):
    with at(NOW):
        flow = kit.launch(yes_no({"field": "event.total", "op": "exists"}))
        ann = kit.customer("ann")
        kit.static_segment("all", [ann])
        start_flow_for_segment(flow=flow, segment_slug="all")
        tick(deliver=False)
    [run] = kit.runs_of(flow, ann)
    assert answer(run) == "no"


@pytest.mark.django_db
def test_an_unwired_port_ends_the_run_completed(mails):
    doc = document(
        [
            event_start("order_created"),
            node("check", "condition", rule={"field": "customer.fields.vip", "op": "eq", "value": True}),
            steps("vip-step", send("yes-mail")),
        ],
        [edge("start", "check"), edge("check", "vip-step", "yes")],
    )
    flow, ann = kit.launch_at(NOW, doc, "ann")
    run = enter(flow, ann)
    assert (run.status, run.stop_reason, run.node_key) == (Run.Status.COMPLETED, "", "check")
    assert run.ended_at == NOW
    assert kit.path_of(run) == [("start", "next", ""), ("check", "no", "")]
    assert kit.messages_of(flow) == []
