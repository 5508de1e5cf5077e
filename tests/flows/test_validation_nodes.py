"""Config validation of every node kind (SPEC §5 shapes): each invalid case next
to the valid neighbour it differs from."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.nodes import REGISTRY, get_kind
from flows.nodes.schedule.recurrence import next_fire
from tests.flows.document_strategies import CONTEXT

RULE = {"field": "customer.fields.tier", "op": "eq", "value": "gold"}
WINDOW = {"weekdays": ["mon", "fri"], "from": "10:00", "to": "18:00", "timezone": "Europe/Berlin"}


def problems(kind: str, config: dict) -> list[tuple[str, str]]:
    return [(p.field, p.message) for p in get_kind(kind).validate(config, CONTEXT)]


def fields(kind: str, config: dict) -> list[str]:
    return [field for field, _ in problems(kind, config)]


def with_(base: dict, **changes) -> dict:
    config = {**base, **changes}
    return {key: value for key, value in config.items() if value is not ...}


def test_the_registry_has_every_kind_with_its_traits():
    assert set(REGISTRY) == {
        "event",
        "schedule",
        "condition",
        "steps",
        "splitter",
        "wait",
        "ab_test",
        "limitation",
        "wait_event",
    }
    assert {kind for kind, node in REGISTRY.items() if node.is_start} == {"event", "schedule"}
    assert {kind for kind, node in REGISTRY.items() if node.breaks_cycles} == {"wait", "wait_event"}
    assert all(node.label and node.kind == kind for kind, node in REGISTRY.items())
    assert get_kind("teleport") is None


# --- event ------------------------------------------------------------------------

EVENT = {"event_type": "order_created", "filter": RULE, "max_age": "P7D"}


@pytest.mark.parametrize(
    "config",
    [
        EVENT,
        {"event_type": "order_created"},
        with_(EVENT, filter=None),
        with_(EVENT, max_age=...),
        with_(EVENT, max_age="PT1H"),
        with_(EVENT, filter={"field": "event.total", "op": "gte", "value": 100}),
        with_(EVENT, filter={"all": [{"field": "segment", "op": "in", "value": ["rule-seg"]}]}),
    ],
)
def test_event_accepts_valid_configs(config):
    assert problems("event", config) == []


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, ["event_type"]),
        (with_(EVENT, event_type=""), ["event_type"]),
        (with_(EVENT, event_type="  "), ["event_type"]),
        (with_(EVENT, event_type=5), ["event_type"]),
        (with_(EVENT, event_type="x" * 101), ["event_type"]),
        # Stored events have their type stripped: this start could never match.
        (with_(EVENT, event_type="order_created "), ["event_type"]),
        (with_(EVENT, event_type=" order_created"), ["event_type"]),
        (with_(EVENT, max_age="7 days"), ["max_age"]),
        (with_(EVENT, max_age=None), ["max_age"]),
        (with_(EVENT, max_age="P1000Y"), ["max_age"]),
        (with_(EVENT, max_age="PT99999999999999999999S"), ["max_age"]),
        (with_(EVENT, max_age="PT0S"), ["max_age"]),
        (with_(EVENT, max_age="-P1D"), ["max_age"]),
        (with_(EVENT, filter={"field": "customer.fields.tier", "op": "equals", "value": 1}), ["filter.op"]),
        (with_(EVENT, filter={"all": [RULE, {"field": "nope"}]}), ["filter.all.1.field"]),
        (with_(EVENT, filter="tier = gold"), ["filter"]),
        (with_(EVENT, filter={"field": "segment", "op": "in", "value": ["ghost"]}), ["filter.value.0"]),
        (
            with_(EVENT, filter={"field": "promo_pool.gone.available", "op": "gt", "value": 0}),
            ["filter.field"],
        ),
        (with_(EVENT, events=["a"]), ["events"]),
    ],
)
def test_event_refuses_invalid_configs(config, expected):
    assert fields("event", config) == expected


def test_event_has_one_port():
    assert get_kind("event").ports(EVENT) == ["next"]


# --- schedule ------------------------------------------------------------------------

SCHEDULE = {
    "recurrence": {"every": "day", "at": "10:00"},
    "timezone": "flow",
    "audience": {"segment": "rule-seg"},
}
MONTHLY = {"every": "month", "at": "08:00"}


@pytest.mark.parametrize(
    "recurrence",
    [
        {"every": "day", "at": "00:00"},
        {"every": "day", "at": "23:59"},
        {"every": "week", "interval": 52, "weekdays": ["mon"], "at": "09:30"},
        {"every": "week", "interval": 2, "weekdays": ["mon", "thu"], "at": "09:30"},
        {"every": "week", "weekdays": ["sun"], "at": "09:30"},
        {"every": "month", "days": [1, 15, "last"], "at": "08:00"},
        {"every": "month", "days": [31], "at": "08:00"},
        {"every": "month", "nth_weekday": {"n": 2, "weekday": "tue"}, "at": "08:00"},
        {"every": "month", "nth_weekday": {"n": -1, "weekday": "fri"}, "at": "08:00"},
        {"every": "month", "nth_weekday": {"n": 5, "weekday": "sat"}, "at": "08:00"},
        {"cron": "0 10 * * *"},
        {"cron": "*/15 8-18 1,15 * 1-5"},
        {"cron": "30 9 * jan,jul mon-fri"},
        {"cron": "0 0 L * *".replace("L", "31")},
        {"cron": "59 23 31 12 7"},
        {"cron": "0-59/5 0 1 1 0"},
    ],
)
def test_schedule_accepts_every_recurrence_shape(recurrence):
    assert problems("schedule", with_(SCHEDULE, recurrence=recurrence)) == []


@pytest.mark.parametrize(
    ("recurrence", "expected"),
    [
        (None, ["recurrence"]),
        ("daily", ["recurrence"]),
        ({"every": "year", "at": "10:00"}, ["recurrence.every"]),
        ({"at": "10:00"}, ["recurrence.every"]),
        ({"every": "day"}, ["recurrence.at"]),
        ({"every": "day", "at": "24:00"}, ["recurrence.at"]),
        ({"every": "day", "at": "9:30"}, ["recurrence.at"]),
        ({"every": "day", "at": "10:60"}, ["recurrence.at"]),
        ({"every": "day", "at": "10:00\n"}, ["recurrence.at"]),
        ({"every": "day", "at": "1٣:00"}, ["recurrence.at"]),
        ({"every": "day", "at": 1000}, ["recurrence.at"]),
        # Saved as ready and then refused by the engine before (issue #11): one judge now.
        ({"every": "day", "interval": 2, "at": "10:00"}, ["recurrence.interval"]),
        ({"every": "week", "interval": 53, "weekdays": ["mon"], "at": "10:00"}, ["recurrence.interval"]),
        ({"cron": "0 10 31 2 *"}, ["recurrence.cron"]),
        ({"cron": "0 10 30,31 2 *"}, ["recurrence.cron"]),
        ({"cron": "0 10 31 apr,jun,sep,nov *"}, ["recurrence.cron"]),
        ({"every": "day", "interval": 0, "at": "10:00"}, ["recurrence.interval"]),
        ({"every": "day", "interval": 1.5, "at": "10:00"}, ["recurrence.interval"]),
        ({"every": "day", "interval": True, "at": "10:00"}, ["recurrence.interval"]),
        ({"every": "day", "weekdays": ["mon"], "at": "10:00"}, ["recurrence.weekdays"]),
        ({"every": "week", "at": "10:00"}, ["recurrence.weekdays"]),
        ({"every": "week", "weekdays": [], "at": "10:00"}, ["recurrence.weekdays"]),
        ({"every": "week", "weekdays": ["monday"], "at": "10:00"}, ["recurrence.weekdays.0"]),
        ({"every": "week", "weekdays": ["mon", "mon"], "at": "10:00"}, ["recurrence.weekdays.1"]),
        ({"every": "week", "interval": -2, "weekdays": ["mon"], "at": "10:00"}, ["recurrence.interval"]),
        ({"every": "month", "at": "08:00"}, ["recurrence.days"]),
        (
            {"every": "month", "days": [1], "nth_weekday": {"n": 1, "weekday": "mon"}, "at": "08:00"},
            ["recurrence.days"],
        ),
        ({"every": "month", "days": [], "at": "08:00"}, ["recurrence.days"]),
        ({"every": "month", "days": [0], "at": "08:00"}, ["recurrence.days.0"]),
        ({"every": "month", "days": [1, 32], "at": "08:00"}, ["recurrence.days.1"]),
        ({"every": "month", "days": ["first"], "at": "08:00"}, ["recurrence.days.0"]),
        ({"every": "month", "days": [1, 1], "at": "08:00"}, ["recurrence.days.1"]),
        ({"every": "month", "days": [1], "interval": 2, "at": "08:00"}, ["recurrence.interval"]),
        ({**MONTHLY, "nth_weekday": {"n": 0, "weekday": "tue"}}, ["recurrence.nth_weekday.n"]),
        ({**MONTHLY, "nth_weekday": {"n": 6, "weekday": "tue"}}, ["recurrence.nth_weekday.n"]),
        ({**MONTHLY, "nth_weekday": {"n": -2, "weekday": "tue"}}, ["recurrence.nth_weekday.n"]),
        ({**MONTHLY, "nth_weekday": {"n": 1, "weekday": "tuesday"}}, ["recurrence.nth_weekday.weekday"]),
        ({"every": "month", "nth_weekday": [2, "tue"], "at": "08:00"}, ["recurrence.nth_weekday"]),
        *[
            ({"cron": expression}, ["recurrence.cron"])
            for expression in (
                "0 10 * *",
                "0 10 * * * *",
                "60 10 * * *",
                "0 24 * * *",
                "0 10 0 * *",
                "0 10 * 13 *",
                "0 10 * * 8",
                "0 10 * * 5-1",
                "*/0 10 * * *",
                "*/٣ 10 * * *",
                "0 10 L * *",
                "0 10 * * mon-",
            )
        ],
        ({"cron": ["0", "10", "*", "*", "*"]}, ["recurrence.cron"]),
        ({"cron": "0 10 * * *", "at": "10:00"}, ["recurrence.at"]),
    ],
)
def test_schedule_refuses_invalid_recurrences(recurrence, expected):
    assert fields("schedule", with_(SCHEDULE, recurrence=recurrence)) == expected


@pytest.mark.parametrize(
    "change",
    [
        {"timezone": ...},
        {"timezone": "Europe/Berlin"},
        {"timezone": "UTC"},
        {"audience": {"rule": RULE}},
        {"audience": {"segment": "static-seg", "rule": RULE}},
        {"audience": {"segment": None, "rule": RULE}},
        {"audience": {"segment": "rule-seg", "rule": None}},
    ],
)
def test_schedule_accepts_time_zones_and_audiences(change):
    assert problems("schedule", with_(SCHEDULE, **change)) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"timezone": "customer"}, ["timezone"]),
        ({"timezone": "Europe/Atlantis"}, ["timezone"]),
        ({"timezone": "europe/berlin"}, ["timezone"]),
        ({"timezone": "localtime"}, ["timezone"]),
        ({"timezone": None}, ["timezone"]),
        ({"audience": ...}, ["audience"]),
        ({"audience": "rule-seg"}, ["audience"]),
        ({"audience": {}}, ["audience"]),
        ({"audience": {"segment": None, "rule": None}}, ["audience"]),
        ({"audience": {"segment": "ghost"}}, ["audience.segment"]),
        ({"audience": {"segment": 3}}, ["audience.segment"]),
        ({"audience": {"segment": "rule-seg", "filter": RULE}}, ["audience.filter"]),
        (
            {"audience": {"rule": {"field": "customer.tier", "op": "eq", "value": "x"}}},
            ["audience.rule.field"],
        ),
        # A schedule audience has no trigger event.
        ({"audience": {"rule": {"field": "event.total", "op": "gt", "value": 1}}}, ["audience.rule.field"]),
        (
            {"audience": {"rule": {"field": "segment", "op": "in", "value": ["rule-seg", "ghost"]}}},
            ["audience.rule.value.1"],
        ),
        ({"cron": "0 10 * * *"}, ["cron"]),
    ],
)
def test_schedule_refuses_invalid_time_zones_and_audiences(change, expected):
    assert fields("schedule", with_(SCHEDULE, **change)) == expected


recurrence_like = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "every": st.sampled_from(["day", "week", "month", "year", 1]),
            "at": st.sampled_from(["10:00", "00:00", "23:59", "9:30", "24:00", None]),
            "interval": st.integers(-1, 60) | st.just(True),
            "weekdays": st.lists(st.sampled_from(["mon", "sun", "x", "mon"]), max_size=3),
            "days": st.lists(st.integers(-1, 33) | st.just("last"), max_size=3),
            "nth_weekday": st.fixed_dictionaries(
                {"n": st.integers(-2, 6), "weekday": st.sampled_from(["tue", "x"])}
            ),
        },
    ),
    st.tuples(
        st.sampled_from(["0", "*/15", "59", "60"]),
        st.sampled_from(["10", "*", "8-18", "24"]),
        st.sampled_from(["*", "*/2", "*/30", "1", "15", "29", "30", "31", "30,31", "0"]),
        st.sampled_from(["*", "2", "feb", "4,6", "apr,jun,sep,nov", "1-12/2", "13"]),
        st.sampled_from(["*", "1-5", "mon", "0", "7", "8"]),
    ).map(lambda parts: {"cron": " ".join(parts)}),
)


@settings(max_examples=300, deadline=None)
@given(recurrence=recurrence_like, after=st.datetimes(datetime(2000, 1, 1), datetime(2400, 1, 1)))
def test_a_schedule_saves_as_valid_exactly_when_the_engine_can_fire_it(recurrence, after):
    """One judge (issue #11): the node's validation and the engine agree on
    every recurrence; a valid one always has a next fire, an invalid one is
    refused by both."""
    after = after.replace(tzinfo=ZoneInfo("Europe/Berlin"))
    valid = not fields("schedule", with_(SCHEDULE, recurrence=recurrence))
    try:
        next_fire(recurrence, tz=ZoneInfo("Europe/Berlin"), after=after, anchor=after)
    except ValueError:
        fires = False
    else:
        fires = True
    assert valid == fires, recurrence


def test_a_schedule_that_never_fires_keeps_the_flow_in_draft_with_the_reason(db):
    from flows import lifecycle
    from flows.models import Flow

    doc = {
        "format": "maestra.flow/1",
        "name": "Never",
        "nodes": [
            {
                "key": "feb31",
                "kind": "schedule",
                "config": {"recurrence": {"cron": "0 10 31 2 *"}, "audience": {"rule": RULE}},
            }
        ],
        "edges": [],
    }
    flow = lifecycle.create_flow(document=doc)
    assert flow.status == Flow.Status.DRAFT
    [error] = flow.draft.errors
    assert (error["node"], error["field"]) == ("feb31", "recurrence.cron")
    assert "never fires" in error["message"]


def test_schedule_has_one_port():
    assert get_kind("schedule").ports(SCHEDULE) == ["next"]


# --- condition ------------------------------------------------------------------------

BRANCHES = {
    "attribute": "customer.fields.tier",
    "branches": [{"name": "gold", "values": ["gold", "platinum"]}, {"name": "silver", "values": ["silver"]}],
}


@pytest.mark.parametrize(
    "config",
    [
        {"rule": RULE},
        {"rule": {"any": [RULE, {"not": {"field": "points", "op": "lt", "value": 100}}]}},
        BRANCHES,
        {
            "attribute": "points",
            "branches": [
                {"name": "low", "values": [{"max": 99}]},
                {"name": "high", "values": [{"min": 100}]},
            ],
        },
        {
            "attribute": "event.total",
            "branches": [{"name": "mid", "values": [{"min": 10, "max": 10}, 0, "zero", True]}],
        },
        {"attribute": "subscription.email", "branches": [{"name": "sub", "values": ["subscribed"]}]},
        {"attribute": "customer.email", "branches": [{"name": "Other ", "values": ["a@b.c"]}]},
        {"attribute": "promo_pool.pool.available", "branches": [{"name": "empty", "values": [0]}]},
        {"attribute": "customer.fields.n", "branches": [{"name": str(i), "values": [i]} for i in range(50)]},
    ],
)
def test_condition_accepts_valid_configs(config):
    assert problems("condition", config) == []


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, ["rule"]),
        ({"rule": None}, ["rule"]),
        ({"rule": {"field": "customer.fields.tier", "op": "eq"}}, ["rule.value"]),
        ({"rule": RULE, "branches": BRANCHES["branches"]}, ["branches"]),
        ({"rule": RULE, "attribute": "points"}, ["attribute"]),
        ({"branches": BRANCHES["branches"]}, ["attribute"]),
        (with_(BRANCHES, attribute=""), ["attribute"]),
        (with_(BRANCHES, attribute="tier"), ["attribute"]),
        (with_(BRANCHES, attribute="customer.birthday"), ["attribute"]),
        (with_(BRANCHES, attribute="segment"), ["attribute"]),
        (with_(BRANCHES, attribute="customer.created_at"), ["attribute"]),
        (with_(BRANCHES, branches=...), ["branches"]),
        (with_(BRANCHES, branches=[]), ["branches"]),
        (with_(BRANCHES, branches={"gold": ["gold"]}), ["branches"]),
        (with_(BRANCHES, branches=["gold"]), ["branches.0"]),
        (
            with_(BRANCHES, branches=[{"name": "gold", "values": ["a"]}, {"name": "gold", "values": ["b"]}]),
            ["branches.1.name"],
        ),
        (with_(BRANCHES, branches=[{"name": "other", "values": ["a"]}]), ["branches.0.name"]),
        (with_(BRANCHES, branches=[{"name": "", "values": ["a"]}]), ["branches.0.name"]),
        (with_(BRANCHES, branches=[{"name": 1, "values": ["a"]}]), ["branches.0.name"]),
        (with_(BRANCHES, branches=[{"name": "n" * 101, "values": ["a"]}]), ["branches.0.name"]),
        (with_(BRANCHES, branches=[{"name": "gold"}]), ["branches.0.values"]),
        (with_(BRANCHES, branches=[{"name": "gold", "values": []}]), ["branches.0.values"]),
        (with_(BRANCHES, branches=[{"name": "gold", "values": "gold"}]), ["branches.0.values"]),
        (with_(BRANCHES, branches=[{"name": "gold", "values": ["a", None]}]), ["branches.0.values.1"]),
        (with_(BRANCHES, branches=[{"name": "gold", "values": [["a"]]}]), ["branches.0.values.0"]),
        (with_(BRANCHES, branches=[{"name": "gold", "values": ["a"], "color": "x"}]), ["branches.0.color"]),
        (
            {
                "attribute": "customer.fields.n",
                "branches": [{"name": str(i), "values": [i]} for i in range(51)],
            },
            ["branches"],
        ),
        ({"attribute": "points", "branches": [{"name": "x", "values": ["many"]}]}, ["branches.0.values.0"]),
        (
            {"attribute": "subscription.sms", "branches": [{"name": "x", "values": ["yes"]}]},
            ["branches.0.values.0"],
        ),
        ({"attribute": "points", "branches": [{"name": "x", "values": [{}]}]}, ["branches.0.values.0"]),
        (
            {"attribute": "points", "branches": [{"name": "x", "values": [{"min": 5, "max": 4}]}]},
            ["branches.0.values.0"],
        ),
        (
            {"attribute": "points", "branches": [{"name": "x", "values": [{"min": "5"}]}]},
            ["branches.0.values.0.min"],
        ),
        (
            {"attribute": "points", "branches": [{"name": "x", "values": [{"min": 1, "step": 2}]}]},
            ["branches.0.values.0.step"],
        ),
        (
            {"attribute": "customer.email", "branches": [{"name": "x", "values": [{"min": 1}]}]},
            ["branches.0.values.0"],
        ),
        (
            {"attribute": "points", "branches": [{"name": "x", "values": [{"max": 2**60}]}]},
            ["branches.0.values.0.max"],
        ),
    ],
)
def test_condition_refuses_invalid_configs(config, expected):
    assert fields("condition", config) == expected


def test_condition_ports_are_yes_no_or_the_branches_and_other():
    condition = get_kind("condition")
    assert condition.ports({"rule": RULE}) == ["yes", "no"]
    assert condition.ports(BRANCHES) == ["gold", "silver", "other"]
    # Ports of a broken config never crash: they name what they can.
    assert condition.ports({"attribute": "x", "branches": "gold"}) == ["other"]
    assert condition.ports({"branches": [{"name": "a"}, "b", {"name": 3}]}) == ["a", "other"]


# --- steps ----------------------------------------------------------------------------

SEND = {"action": "send", "channel": "email", "template": "t-email"}


def steps(*actions, relevance="P1D") -> dict:
    return {"relevance": relevance, "steps": list(actions)}


@pytest.mark.parametrize(
    "action",
    [
        SEND,
        {"action": "send", "channel": "webhook", "template": "t-webhook"},
        {"action": "send", "channel": "mobile_push", "template": "t-mobile_push"},
        {"action": "issue_promo_code", "pool": "pool"},
        {"action": "points", "amount": 100},
        {"action": "points", "amount": -5, "expires_in": "P30D", "reason": "welcome"},
        {"action": "points", "amount": 1, "expires_in": None, "reason": ""},
        {"action": "points", "amount": 2**31 - 1, "expires_in": "P100Y"},
        {"action": "points", "amount": -(2**31 - 1)},
        {"action": "set_field", "field": "vip", "value": True},
        {"action": "set_field", "field": "tier", "value": None},
        {"action": "set_field", "field": "greeting", "value": "Hello {{ customer.first_name }}"},
        {"action": "set_field", "field": "prefs", "value": {"a": [1, 2]}},
        {"action": "add_to_segment", "segment": "static-seg"},
        {"action": "remove_from_segment", "segment": "static-seg"},
        {"action": "emit_event", "event_type": "vip_reached"},
        {"action": "emit_event", "event_type": "vip_reached", "payload": {"level": 2}},
    ],
)
def test_steps_accept_every_action(action):
    assert problems("steps", steps(action)) == []


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("send", ["steps.0"]),
        ({"channel": "email", "template": "t-email"}, ["steps.0.action"]),
        ({"action": "call", "number": "123"}, ["steps.0.action"]),
        (with_(SEND, channel="fax"), ["steps.0.channel"]),
        (with_(SEND, channel=...), ["steps.0.channel"]),
        (with_(SEND, template=...), ["steps.0.template"]),
        (with_(SEND, template=""), ["steps.0.template"]),
        (with_(SEND, template="ghost"), ["steps.0.template"]),
        (with_(SEND, template="t-sms"), ["steps.0.template"]),
        (with_(SEND, subject="Hi"), ["steps.0.subject"]),
        ({"action": "issue_promo_code"}, ["steps.0.pool"]),
        ({"action": "issue_promo_code", "pool": "dry"}, ["steps.0.pool"]),
        ({"action": "issue_promo_code", "pool": ["pool"]}, ["steps.0.pool"]),
        ({"action": "points"}, ["steps.0.amount"]),
        ({"action": "points", "amount": 0}, ["steps.0.amount"]),
        ({"action": "points", "amount": 1.5}, ["steps.0.amount"]),
        ({"action": "points", "amount": "100"}, ["steps.0.amount"]),
        ({"action": "points", "amount": True}, ["steps.0.amount"]),
        # The ledger's integer column: 10**30 was "bigint out of range" in every tick.
        ({"action": "points", "amount": 10**30}, ["steps.0.amount"]),
        ({"action": "points", "amount": 2**31}, ["steps.0.amount"]),
        ({"action": "points", "amount": -(2**31)}, ["steps.0.amount"]),
        ({"action": "points", "amount": 10, "expires_in": "30 days"}, ["steps.0.expires_in"]),
        ({"action": "points", "amount": 10, "expires_in": "-P1D"}, ["steps.0.expires_in"]),
        ({"action": "points", "amount": 10, "reason": 7}, ["steps.0.reason"]),
        ({"action": "set_field", "value": 1}, ["steps.0.field"]),
        ({"action": "set_field", "field": "", "value": 1}, ["steps.0.field"]),
        ({"action": "set_field", "field": "address.city", "value": "Berlin"}, ["steps.0.field"]),
        ({"action": "set_field", "field": "customer.fields.vip", "value": True}, ["steps.0.field"]),
        ({"action": "set_field", "field": "vip"}, ["steps.0.value"]),
        ({"action": "add_to_segment"}, ["steps.0.segment"]),
        ({"action": "add_to_segment", "segment": "ghost"}, ["steps.0.segment"]),
        ({"action": "add_to_segment", "segment": "rule-seg"}, ["steps.0.segment"]),
        ({"action": "remove_from_segment", "segment": "rule-seg"}, ["steps.0.segment"]),
        ({"action": "emit_event"}, ["steps.0.event_type"]),
        ({"action": "emit_event", "event_type": ""}, ["steps.0.event_type"]),
        ({"action": "emit_event", "event_type": "x", "payload": [1]}, ["steps.0.payload"]),
        ({"action": "emit_event", "event_type": "x", "payload": None}, ["steps.0.payload"]),
    ],
)
def test_steps_refuse_invalid_actions(action, expected):
    assert fields("steps", steps(action)) == expected


def test_steps_name_the_failing_action_by_its_index():
    config = steps(
        SEND,
        {"action": "points", "amount": 0},
        SEND,
        {"action": "send", "channel": "sms", "template": "t-email"},
    )
    assert problems("steps", config) == [
        ("steps.1.amount", "must be a non-zero integer (negative to deduct)"),
        ("steps.3.template", "'t-email' is a template for email, not for sms"),
    ]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"steps": [SEND]}, ["relevance"]),
        (steps(SEND, relevance="P0D"), ["relevance"]),
        (steps(SEND, relevance="-P1D"), ["relevance"]),
        (steps(SEND, relevance="one day"), ["relevance"]),
        (steps(SEND, relevance=None), ["relevance"]),
        ({"relevance": "P1D"}, ["steps"]),
        ({"relevance": "P1D", "steps": []}, ["steps"]),
        ({"relevance": "P1D", "steps": SEND}, ["steps"]),
        ({**steps(SEND), "retry": True}, ["retry"]),
        (steps(*[SEND] * 101), ["steps"]),
        (steps(SEND, relevance="P101Y"), ["relevance"]),
    ],
)
def test_steps_need_a_positive_relevance_and_actions(config, expected):
    assert fields("steps", config) == expected


def test_steps_have_one_port():
    assert get_kind("steps").ports(steps(SEND)) == ["next"]


# --- splitter and ab_test ---------------------------------------------------------------


@pytest.mark.parametrize(
    "branches",
    [
        [{"name": "1", "percent": 50}, {"name": "2", "percent": 50}],
        [{"name": "a", "percent": 100}, {"name": "b", "percent": 0}],
        [{"name": n, "percent": p} for n, p in zip("abcdefghij", [10] * 10)],
    ],
)
def test_splitter_accepts_branches_summing_to_100(branches):
    assert problems("splitter", {"branches": branches}) == []


@pytest.mark.parametrize(
    ("branches", "expected"),
    [
        (None, ["branches"]),
        ([], ["branches"]),
        ([{"name": "all", "percent": 100}], ["branches"]),
        ([{"name": "1", "percent": 50}, {"name": "2", "percent": 49}], ["branches"]),
        ([{"name": "1", "percent": 60}, {"name": "2", "percent": 50}], ["branches"]),
        ([{"name": "1", "percent": 50.0}, {"name": "2", "percent": 50}], ["branches.0.percent"]),
        ([{"name": "1", "percent": "50"}, {"name": "2", "percent": 50}], ["branches.0.percent"]),
        (
            [{"name": "1", "percent": 150}, {"name": "2", "percent": -50}],
            ["branches.0.percent", "branches.1.percent"],
        ),
        ([{"name": "1"}, {"name": "2", "percent": 100}], ["branches.0.percent"]),
        ([{"name": "1", "percent": 50}, {"name": "1", "percent": 50}], ["branches.1.name"]),
        ([{"name": "", "percent": 50}, {"name": "2", "percent": 50}], ["branches.0.name"]),
        ([{"percent": 50}, {"name": "2", "percent": 50}], ["branches.0.name"]),
        (
            [{"name": "1", "percent": 50, "control": True}, {"name": "2", "percent": 50}],
            ["branches.0.control"],
        ),
        (["1", {"name": "2", "percent": 50}], ["branches.0"]),
    ],
)
def test_splitter_refuses_invalid_branches(branches, expected):
    assert fields("splitter", {"branches": branches}) == expected


def test_splitter_refuses_unknown_fields_and_names_its_ports():
    config = {"branches": [{"name": "1", "percent": 50}, {"name": "2", "percent": 50}]}
    assert fields("splitter", {**config, "seed": 4}) == ["seed"]
    assert get_kind("splitter").ports(config) == ["1", "2"]
    assert get_kind("splitter").ports({"branches": "x"}) == []


AB = {
    "variants": [
        {"name": "A", "percent": 45},
        {"name": "B", "percent": 45},
        {"name": "control", "percent": 10, "control": True},
    ]
}


@pytest.mark.parametrize(
    "variants",
    [
        AB["variants"],
        [{"name": "A", "percent": 50}, {"name": "B", "percent": 50}],
        [{"name": "A", "percent": 50, "control": False}, {"name": "B", "percent": 50, "control": True}],
        [{"name": n, "percent": 20} for n in "ABCDE"],
    ],
)
def test_ab_test_accepts_valid_variants(variants):
    assert problems("ab_test", {"variants": variants}) == []


@pytest.mark.parametrize(
    ("variants", "expected"),
    [
        (None, ["variants"]),
        ([{"name": "A", "percent": 100}], ["variants"]),
        ([{"name": n, "percent": p} for n, p in zip("ABCDEF", [20, 20, 20, 20, 10, 10])], ["variants"]),
        ([{"name": "A", "percent": 50}, {"name": "B", "percent": 40}], ["variants"]),
        ([{"name": "A", "percent": 50}, {"name": "A", "percent": 50}], ["variants.1.name"]),
        (
            [{"name": "A", "percent": 50, "control": True}, {"name": "B", "percent": 50, "control": True}],
            ["variants.1.control"],
        ),
        (
            [{"name": "A", "percent": 50, "control": "yes"}, {"name": "B", "percent": 50}],
            ["variants.0.control"],
        ),
        ([{"name": "A", "percent": 50, "weight": 1}, {"name": "B", "percent": 50}], ["variants.0.weight"]),
    ],
)
def test_ab_test_refuses_invalid_variants(variants, expected):
    assert fields("ab_test", {"variants": variants}) == expected


def test_ab_test_ports_are_the_variant_names():
    assert get_kind("ab_test").ports(AB) == ["A", "B", "control"]
    assert fields("ab_test", {**AB, "sticky": False}) == ["sticky"]


# --- wait --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {"mode": "fixed", "duration": "PT24H"},
        {"mode": "fixed", "duration": "P3D", "window": None},
        {"mode": "fixed", "duration": "PT1S", "window": WINDOW},
        {"mode": "dynamic", "field": "customer.fields.birthday", "offset": "-P3D"},
        {"mode": "dynamic", "field": "customer.fields.birthday", "offset": "PT0S", "window": WINDOW},
        {"mode": "dynamic", "field": "customer.created_at", "offset": "P1M"},
        {"mode": "dynamic", "field": "event.delivery_date"},
        {"mode": "dynamic", "field": "event.order.delivery_date", "offset": "-P100Y"},
        {"mode": "window", "window": WINDOW},
        {"mode": "window", "window": with_(WINDOW, timezone="flow")},
        {"mode": "window", "window": with_(WINDOW, timezone="customer")},
        {"mode": "window", "window": with_(WINDOW, timezone=...)},
        {
            "mode": "window",
            "window": with_(WINDOW, weekdays=list(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))),
        },
        {"mode": "window", "window": with_(WINDOW, **{"from": "00:00", "to": "23:59"})},
        # The engine's windows (flows/nodes/wait/windows.py) run overnight and whole-day
        # windows; the node's validation refused them before.
        {"mode": "window", "window": with_(WINDOW, **{"from": "22:00", "to": "06:00"})},
        {"mode": "window", "window": with_(WINDOW, **{"from": "10:00", "to": "10:00"})},
    ],
)
def test_wait_accepts_every_mode(config):
    assert problems("wait", config) == []


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, ["mode"]),
        ({"mode": "until", "duration": "P1D"}, ["mode"]),
        ({"mode": "fixed"}, ["duration"]),
        ({"mode": "fixed", "duration": "PT0S"}, ["duration"]),
        ({"mode": "fixed", "duration": "-P1D"}, ["duration"]),
        ({"mode": "fixed", "duration": 86400}, ["duration"]),
        ({"mode": "fixed", "duration": "P1D", "field": "event.date"}, ["field"]),
        ({"mode": "dynamic"}, ["field"]),
        ({"mode": "dynamic", "field": "birthday"}, ["field"]),
        ({"mode": "dynamic", "field": "customer.email"}, ["field"]),
        ({"mode": "dynamic", "field": "points"}, ["field"]),
        ({"mode": "dynamic", "field": "event."}, ["field"]),
        ({"mode": "dynamic", "field": "customer.fields.birthday", "offset": "3 days early"}, ["offset"]),
        ({"mode": "dynamic", "field": "customer.fields.birthday", "offset": None}, ["offset"]),
        ({"mode": "dynamic", "field": "customer.fields.birthday", "offset": "-P101Y"}, ["offset"]),
        ({"mode": "fixed", "duration": "P99999999999Y"}, ["duration"]),
        ({"mode": "dynamic", "field": "customer.fields.birthday", "duration": "P1D"}, ["duration"]),
        ({"mode": "window"}, ["window"]),
        ({"mode": "window", "window": None}, ["window"]),
        ({"mode": "window", "window": "10:00-18:00"}, ["window"]),
        ({"mode": "window", "window": WINDOW, "duration": "P1D"}, ["duration"]),
        ({"mode": "window", "window": with_(WINDOW, weekdays=...)}, ["window.weekdays"]),
        ({"mode": "window", "window": with_(WINDOW, weekdays=[])}, ["window.weekdays"]),
        ({"mode": "window", "window": with_(WINDOW, weekdays=["Mon"])}, ["window.weekdays.0"]),
        ({"mode": "window", "window": with_(WINDOW, weekdays=["mon", "tue", "mon"])}, ["window.weekdays.2"]),
        ({"mode": "window", "window": with_(WINDOW, **{"from": "25:00"})}, ["window.from"]),
        ({"mode": "window", "window": with_(WINDOW, to=...)}, ["window.to"]),
        ({"mode": "window", "window": with_(WINDOW, **{"from": "9:00"})}, ["window.from"]),
        ({"mode": "window", "window": with_(WINDOW, timezone="Berlin")}, ["window.timezone"]),
        ({"mode": "window", "window": with_(WINDOW, timezone=None)}, ["window.timezone"]),
        ({"mode": "fixed", "duration": "P1D", "window": with_(WINDOW, days=["mon"])}, ["window.days"]),
    ],
)
def test_wait_refuses_invalid_configs(config, expected):
    assert fields("wait", config) == expected


def test_wait_has_one_port():
    assert get_kind("wait").ports({"mode": "fixed", "duration": "P1D"}) == ["next"]


# --- limitation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {"max": 1000, "period": None, "alert_below": None},
        {"max": 1},
        {"max": 1000, "period": {"unit": "hours", "every": 6}, "alert_below": 100},
        {"max": 5, "period": {"unit": "days", "every": 1}, "alert_below": 0},
        {"max": 5, "period": {"unit": "calendar_days", "every": 2}, "alert_below": 4},
        {"max": 5, "period": {"unit": "weeks", "every": 1}},
        {"max": 2**31 - 1, "period": {"unit": "days", "every": 1000}, "alert_below": 2**31 - 2},
    ],
)
def test_limitation_accepts_valid_configs(config):
    assert problems("limitation", config) == []


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, ["max"]),
        ({"max": 0}, ["max"]),
        ({"max": -3}, ["max"]),
        ({"max": 2.5}, ["max"]),
        ({"max": "1000"}, ["max"]),
        ({"max": True}, ["max"]),
        ({"max": 10, "period": "P1D"}, ["period"]),
        ({"max": 10, "period": {"unit": "months", "every": 1}}, ["period.unit"]),
        ({"max": 10, "period": {"every": 1}}, ["period.unit"]),
        ({"max": 10, "period": {"unit": "days"}}, ["period.every"]),
        ({"max": 10, "period": {"unit": "days", "every": 0}}, ["period.every"]),
        # Bounds (SPEC §12): 10**30 days overflowed every tick; max is an integer column.
        ({"max": 10, "period": {"unit": "days", "every": 1001}}, ["period.every"]),
        ({"max": 10, "period": {"unit": "hours", "every": 10**30}}, ["period.every"]),
        ({"max": 2**31}, ["max"]),
        ({"max": 10**30}, ["max"]),
        ({"max": 10, "period": {"unit": "days", "every": 1, "start": "mon"}}, ["period.start"]),
        ({"max": 10, "alert_below": 10}, ["alert_below"]),
        ({"max": 10, "alert_below": 11}, ["alert_below"]),
        ({"max": 10, "alert_below": -1}, ["alert_below"]),
        ({"max": 10, "alert_below": "5"}, ["alert_below"]),
        ({"max": 10, "mode": "per_customer"}, ["mode"]),
    ],
)
def test_limitation_refuses_invalid_configs(config, expected):
    assert fields("limitation", config) == expected


def test_limitation_ports_are_within_and_beyond():
    assert get_kind("limitation").ports({"max": 1}) == ["within", "beyond"]
