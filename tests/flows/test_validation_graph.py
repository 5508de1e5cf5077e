"""Document-level validation (SPEC §4): settings, node keys and kinds, edges,
reachability, cycles, the node limit, and the database look-ups."""

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.models import Template
from customers.models import PromoPool, Segment
from flows.document import FORMAT, parse_document
from flows.document.validate import MAX_NODES, validate_document
from flows.nodes.base import ValidationContext
from tests.flows.document_strategies import CONTEXT, documents, every_variant_documents

SPEC_EXAMPLE = Path(__file__).parent / "fixtures" / "spec_example.json"

EVENT = {"event_type": "order_created"}
SEND = {"relevance": "P1D", "steps": [{"action": "send", "channel": "email", "template": "t-email"}]}
WAIT = {"mode": "fixed", "duration": "P1D"}
RULE = {"field": "customer.fields.tier", "op": "eq", "value": "gold"}
CONFIGS = {
    "event": EVENT,
    "schedule": {"recurrence": {"every": "day", "at": "10:00"}, "audience": {"segment": "static-seg"}},
    "condition": {"rule": RULE},
    "steps": SEND,
    "splitter": {"branches": [{"name": "a", "percent": 50}, {"name": "b", "percent": 50}]},
    "wait": WAIT,
    "ab_test": {"variants": [{"name": "A", "percent": 50}, {"name": "B", "percent": 50, "control": True}]},
    "limitation": {"max": 10, "period": {"unit": "days", "every": 1}},
}
FIRST_PORT = {"condition": "yes", "splitter": "a", "ab_test": "A", "limitation": "within"}


def node(key: str, kind: str, config: dict | None = None) -> dict:
    return {"key": key, "kind": kind, "config": CONFIGS[kind] if config is None else config}


def edge(source: str, target: str, port: str | None = None) -> dict:
    result = {"from": source, "to": target}
    if port is not None:
        result["port"] = port
    return result


def document(nodes: list[dict], edges: list[dict], **settings_) -> dict:
    return parse_document({"format": FORMAT, "name": "Test", **settings_, "nodes": nodes, "edges": edges})


def chain(*kinds: str) -> dict:
    """start -> n1 -> n2 ... through the first port of each node."""
    nodes = [node("start", "event")] + [node(f"n{i}", kind) for i, kind in enumerate(kinds, 1)]
    edges = [edge(a["key"], b["key"], FIRST_PORT.get(a["kind"])) for a, b in zip(nodes, nodes[1:])]
    return document(nodes, edges)


def errors(doc: dict, ctx: ValidationContext = CONTEXT) -> list[tuple[str | None, str]]:
    return [(e["node"], e["field"]) for e in validate_document(doc, ctx)]


def test_a_valid_chain_has_no_errors():
    assert validate_document(chain("steps", "wait", "condition", "steps"), CONTEXT) == []


def test_errors_name_the_node_the_field_and_the_problem():
    doc = chain("steps")
    doc["nodes"][1]["config"] = {**SEND, "relevance": "P0D"}
    assert validate_document(doc, CONTEXT) == [
        {"node": "n1", "field": "relevance", "message": "must be a positive duration"}
    ]


# --- Settings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"timezone": "Europe/Berlin"},
        {"timezone": "UTC"},
        {"launch_limit": None},
        {"launch_limit": {}},
        {"launch_limit": {"mode": "once"}},
        {"launch_limit": {"mode": "every_time", "max_total": 3}},
        {"launch_limit": {"mode": "every_time", "period": None, "max_total": None}},
        {"launch_limit": {"mode": "periodic", "period": "P7D", "max_total": None}},
        {"launch_limit": {"mode": "periodic", "period": "PT12H", "max_total": 1}},
        {"schedule": {"start_at": None, "end_at": None}},
        {"schedule": {"start_at": "2025-06-01T10:00:00+02:00"}},
        {"schedule": {"end_at": "2025-06-01T10:00:00Z"}},
        {"schedule": {"start_at": "2025-06-01T10:00:00+02:00", "end_at": "2025-06-01T08:00:01Z"}},
    ],
)
def test_valid_settings_have_no_errors(change):
    doc = chain("steps")
    doc.update(change)
    assert validate_document(doc, CONTEXT) == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"timezone": "Europe/Atlantis"}, "timezone"),
        ({"timezone": ""}, "timezone"),
        ({"timezone": "flow"}, "timezone"),
        ({"launch_limit": {"mode": "twice"}}, "launch_limit.mode"),
        ({"launch_limit": {"mode": "periodic"}}, "launch_limit.period"),
        ({"launch_limit": {"mode": "periodic", "period": None}}, "launch_limit.period"),
        ({"launch_limit": {"mode": "periodic", "period": "PT0S"}}, "launch_limit.period"),
        ({"launch_limit": {"mode": "periodic", "period": "-P7D"}}, "launch_limit.period"),
        ({"launch_limit": {"mode": "periodic", "period": "weekly"}}, "launch_limit.period"),
        ({"launch_limit": {"mode": "periodic", "period": "P99999999999Y"}}, "launch_limit.period"),
        ({"launch_limit": {"mode": "once", "period": "weekly"}}, "launch_limit.period"),
        ({"launch_limit": {"mode": "every_time", "max_total": 0}}, "launch_limit.max_total"),
        ({"launch_limit": {"mode": "every_time", "max_total": -5}}, "launch_limit.max_total"),
        ({"launch_limit": {"mode": "every_time", "max_total": 2**31}}, "launch_limit.max_total"),
        ({"launch_limit": {"mode": "once", "max_total": 10**30}}, "launch_limit.max_total"),
        ({"schedule": {"start_at": "2025-06-01T10:00:00"}}, "schedule.start_at"),
        ({"schedule": {"start_at": "2025-06-01"}}, "schedule.start_at"),
        ({"schedule": {"end_at": "tomorrow"}}, "schedule.end_at"),
        ({"schedule": {"end_at": "2025-13-01T10:00:00Z"}}, "schedule.end_at"),
        (
            {"schedule": {"start_at": "2025-06-01T10:00:00+02:00", "end_at": "2025-06-01T08:00:00Z"}},
            "schedule.end_at",
        ),
        (
            {"schedule": {"start_at": "2025-06-02T00:00:00Z", "end_at": "2025-06-01T00:00:00Z"}},
            "schedule.end_at",
        ),
    ],
)
def test_invalid_settings_are_document_level_errors(change, field):
    doc = chain("steps")
    doc.update(change)
    assert errors(doc) == [(None, field)]


def test_settings_errors_come_before_node_errors():
    doc = chain("steps")
    doc["timezone"] = "Nowhere"
    doc["nodes"][1]["config"] = {}
    assert errors(doc) == [(None, "timezone"), ("n1", "relevance"), ("n1", "steps")]


# --- Start node, keys, kinds -------------------------------------------------------------


def test_a_flow_needs_a_start_node():
    doc = document([node("a", "steps"), node("b", "wait")], [edge("a", "b")])
    assert errors(doc) == [(None, "nodes")]


def test_an_empty_flow_needs_a_start_node():
    assert errors(document([], [])) == [(None, "nodes")]


def test_a_schedule_start_is_a_start_node():
    doc = document([node("s", "schedule"), node("a", "steps")], [edge("s", "a")])
    assert errors(doc) == []


def test_a_flow_has_only_one_start_node():
    nodes = [node("e", "event"), node("s", "schedule"), node("e2", "event"), node("a", "steps")]
    doc = document(nodes, [edge("e", "a"), edge("s", "a")])
    assert errors(doc) == [("s", "kind"), ("e2", "kind")]


def test_node_keys_are_unique():
    doc = document([node("start", "event"), node("a", "steps"), node("a", "wait")], [edge("start", "a")])
    assert errors(doc) == [("a", "key")]


def test_an_unknown_kind_is_an_error_on_its_node():
    nodes = [node("start", "event"), node("x", "event", {}) | {"kind": "teleport"}]
    doc = document(nodes, [edge("start", "x"), edge("x", "start")])
    # The edge out of the unknown node is not judged again (its ports are unknown),
    # but the edge into the start node is.
    assert errors(doc) == [("x", "kind"), (None, "edges.1.to")]


def test_config_errors_of_every_node_are_reported():
    doc = chain("steps", "wait", "limitation")
    doc["nodes"][1]["config"] = {**SEND, "relevance": "soon"}
    doc["nodes"][2]["config"] = {"mode": "fixed"}
    doc["nodes"][3]["config"] = {"max": 0}
    assert errors(doc) == [("n1", "relevance"), ("n2", "duration"), ("n3", "max")]


# --- Edges -------------------------------------------------------------------------------


def test_edges_from_or_to_unknown_nodes_are_errors():
    doc = chain("steps")
    doc["edges"] += [edge("ghost", "n1"), edge("n1", "ghost")]
    assert errors(doc) == [(None, "edges.1.from"), (None, "edges.2.to")]


def test_an_edge_from_a_port_the_node_does_not_have_is_an_error():
    doc = chain("condition", "steps")
    doc["edges"][1]["port"] = "maybe"
    result = validate_document(doc, CONTEXT)
    assert [(e["node"], e["field"]) for e in result] == [(None, "edges.1.port"), ("n2", "edges")]
    assert result[0]["message"] == "'n1' has no port 'maybe' (its ports: yes, no)"


def test_an_edge_without_port_uses_next():
    doc = chain("condition", "steps")
    del doc["edges"][1]["port"]
    assert (None, "edges.1.port") in errors(doc)
    doc = chain("steps", "steps")
    doc["edges"][1]["port"] = "next"
    assert errors(doc) == []


@pytest.mark.parametrize(
    ("kind", "ports"),
    [
        ("condition", ["yes", "no"]),
        ("splitter", ["a", "b"]),
        ("ab_test", ["A", "B"]),
        ("limitation", ["within", "beyond"]),
    ],
)
def test_every_port_of_a_node_may_be_wired(kind, ports):
    nodes = [node("start", "event"), node("x", kind)] + [node(f"t{i}", "steps") for i in range(len(ports))]
    edges = [edge("start", "x")] + [edge("x", f"t{i}", port) for i, port in enumerate(ports)]
    assert errors(document(nodes, edges)) == []


def test_branch_ports_of_a_condition_follow_its_config():
    config = {"attribute": "customer.fields.tier", "branches": [{"name": "gold", "values": ["gold"]}]}
    nodes = [node("start", "event"), node("c", "condition", config), node("g", "steps"), node("o", "steps")]
    good = document(nodes, [edge("start", "c"), edge("c", "g", "gold"), edge("c", "o", "other")])
    assert errors(good) == []
    bad = document(nodes, [edge("start", "c"), edge("c", "g", "yes"), edge("c", "o", "other")])
    assert errors(bad) == [(None, "edges.1.port"), ("g", "edges")]


def test_one_port_leads_to_one_node():
    nodes = [node("start", "event"), node("a", "steps"), node("b", "steps")]
    doc = document(nodes, [edge("start", "a"), edge("start", "b", "next")])
    result = validate_document(doc, CONTEXT)
    assert [(e["node"], e["field"]) for e in result] == [(None, "edges.1.port"), ("b", "edges")]
    assert "already connected (edges.0)" in result[0]["message"]


def test_two_ports_of_one_node_may_lead_to_the_same_node():
    nodes = [node("start", "event"), node("c", "condition"), node("a", "steps")]
    doc = document(nodes, [edge("start", "c"), edge("c", "a", "yes"), edge("c", "a", "no")])
    assert errors(doc) == []


def test_nothing_may_lead_into_the_start_node():
    doc = document([node("start", "event"), node("w", "wait")], [edge("start", "w"), edge("w", "start")])
    assert errors(doc) == [(None, "edges.1.to")]


# --- Reachability -----------------------------------------------------------------------


def test_every_node_must_be_reachable_from_the_start():
    nodes = [node("start", "event"), node("a", "steps"), node("island", "steps"), node("b", "wait")]
    doc = document(nodes, [edge("start", "a"), edge("island", "b")])
    assert errors(doc) == [("island", "edges"), ("b", "edges")]


def test_a_node_reached_through_a_long_path_is_reachable():
    assert errors(chain("condition", "splitter", "ab_test", "limitation", "wait", "steps")) == []


def test_unwired_ports_are_fine():
    # A port with no edge means: the run ends there, completed.
    assert errors(chain("limitation")) == []


def test_without_a_start_node_reachability_is_not_reported_node_by_node():
    doc = document([node("a", "steps"), node("b", "steps")], [])
    assert errors(doc) == [(None, "nodes")]


# --- Cycles -----------------------------------------------------------------------------


def test_a_cycle_through_a_wait_node_is_allowed():
    nodes = [node("start", "event"), node("a", "steps"), node("w", "wait"), node("c", "condition")]
    doc = document(nodes, [edge("start", "a"), edge("a", "w"), edge("w", "c"), edge("c", "a", "yes")])
    assert errors(doc) == []


def test_a_cycle_without_a_wait_node_is_an_error():
    nodes = [node("start", "event"), node("a", "steps"), node("c", "condition"), node("w", "wait")]
    doc = document(nodes, [edge("start", "a"), edge("a", "c"), edge("c", "a", "yes"), edge("c", "w", "no")])
    result = validate_document(doc, CONTEXT)
    assert [(e["node"], e["field"]) for e in result] == [("a", "edges")]
    assert "a → c → a" in result[0]["message"]


def test_a_node_looping_onto_itself_is_a_cycle():
    nodes = [node("start", "event"), node("c", "condition")]
    doc = document(nodes, [edge("start", "c"), edge("c", "c", "no")])
    assert errors(doc) == [("c", "edges")]


def test_a_wait_node_may_loop_onto_itself():
    doc = document([node("start", "event"), node("w", "wait")], [edge("start", "w"), edge("w", "w")])
    assert errors(doc) == []


def test_each_cycle_without_a_wait_is_reported_once():
    doc = document(
        [
            node("start", "event"),
            node("a", "condition"),
            node("b", "steps"),
            node("w", "wait"),
            node("c", "condition"),
            node("d", "steps"),
        ],
        [
            edge("start", "a"),
            edge("a", "b", "yes"),
            edge("b", "a"),
            edge("a", "w", "no"),
            edge("w", "c"),
            edge("c", "d", "yes"),
            edge("d", "c"),
        ],
    )
    assert errors(doc) == [("a", "edges"), ("c", "edges")]


def test_a_cycle_in_an_unreachable_part_is_still_reported():
    nodes = [node("start", "event"), node("a", "steps"), node("b", "steps")]
    doc = document(nodes, [edge("a", "b"), edge("b", "a")])
    assert errors(doc) == [("a", "edges"), ("b", "edges"), ("a", "edges")]


# --- Size ----------------------------------------------------------------------------------

ALL_KINDS_BUT_START = ["steps", "wait", "condition", "splitter", "ab_test", "limitation", "schedule"]


def long_chain(count: int) -> dict:
    kinds = [k for k in ALL_KINDS_BUT_START if k != "schedule"]
    return chain(*[kinds[i % len(kinds)] for i in range(count - 1)])


@pytest.mark.django_db
def test_a_chain_of_150_nodes_of_every_kind_validates_with_few_queries(django_assert_max_num_queries):
    Template.objects.create(slug="t-email", name="T", channel="email")
    Segment.objects.create(slug="static-seg", name="S")
    doc = long_chain(MAX_NODES)
    assert len(doc["nodes"]) == 150
    assert {n["kind"] for n in doc["nodes"]} == {"event", *ALL_KINDS_BUT_START} - {"schedule"}
    # Templates, segments, pools, and the one template the flow sends (read to
    # render it for a sample customer).
    with django_assert_max_num_queries(4):
        assert validate_document(doc) == []


def test_a_chain_of_150_nodes_with_a_schedule_start_validates():
    doc = long_chain(MAX_NODES)
    doc["nodes"][0] = node("start", "schedule")
    assert errors(doc) == []


def test_151_nodes_are_too_many():
    doc = long_chain(MAX_NODES + 1)
    result = validate_document(doc, CONTEXT)
    assert result == [
        {"node": None, "field": "nodes", "message": "a flow can have at most 150 nodes, this one has 151"}
    ]


# --- Database look-ups ------------------------------------------------------------------


@pytest.mark.django_db
def test_the_spec_example_is_valid_when_its_templates_exist(django_assert_num_queries):
    doc = parse_document(SPEC_EXAMPLE.read_text())
    assert [e["field"] for e in validate_document(doc)] == ["steps.0.template", "steps.0.template"]
    Template.objects.create(slug="confirm", name="Confirm", channel="email", purpose="service")
    Template.objects.create(slug="reminder", name="Reminder", channel="email")
    # Templates, segments, pools, and each of the two templates it sends.
    with django_assert_num_queries(5):
        assert validate_document(doc) == []


@pytest.mark.django_db
def test_references_are_checked_against_the_database():
    doc = chain("steps", "steps", "steps")
    doc["nodes"][1]["config"] = {
        "relevance": "P1D",
        "steps": [{"action": "send", "channel": "sms", "template": "hello"}],
    }
    doc["nodes"][2]["config"] = {
        "relevance": "P1D",
        "steps": [{"action": "issue_promo_code", "pool": "summer"}],
    }
    doc["nodes"][3]["config"] = {
        "relevance": "P1D",
        "steps": [{"action": "add_to_segment", "segment": "vip"}],
    }
    assert errors(doc, None) == [
        ("n1", "steps.0.template"),
        ("n2", "steps.0.pool"),
        ("n3", "steps.0.segment"),
    ]
    Template.objects.create(slug="hello", name="Hello", channel="sms")
    PromoPool.objects.create(slug="summer", name="Summer")
    Segment.objects.create(slug="vip", name="VIP", kind="rule", rule=RULE)
    assert errors(doc, None) == [("n3", "steps.0.segment")]  # rule-based: no members to add
    Segment.objects.filter(slug="vip").update(kind="static")
    assert errors(doc, None) == []


@pytest.mark.django_db
def test_segments_and_pools_named_in_rules_must_exist():
    doc = chain("condition")
    doc["nodes"][1]["config"] = {
        "rule": {
            "all": [
                {"field": "segment", "op": "not_in", "value": ["blocked"]},
                {"field": "promo_pool.summer.available", "op": "gt", "value": 0},
            ]
        }
    }
    assert errors(doc, None) == [("n1", "rule.all.0.value.0"), ("n1", "rule.all.1.field")]
    Segment.objects.create(slug="blocked", name="Blocked")
    PromoPool.objects.create(slug="summer", name="Summer")
    assert errors(doc, None) == []


@pytest.mark.parametrize("doc", every_variant_documents())
def test_every_config_variant_of_the_spec_is_valid(doc):
    assert validate_document(doc, CONTEXT) == []


# --- Properties ----------------------------------------------------------------------------


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_every_generated_valid_document_has_no_errors(doc):
    assert validate_document(parse_document(json.loads(json.dumps(doc))), CONTEXT) == []


# Text a well-formed document may hold (no lone surrogate, no NUL: parse_document refuses those).
storable = st.characters(codec="utf-8", exclude_characters="\x00")
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(storable, max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(storable, max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
FIELD_NAMES = [
    "event_type", "filter", "max_age", "recurrence", "timezone", "audience", "rule", "attribute", "branches",
    "relevance", "steps", "mode", "duration", "field", "offset", "window", "variants", "max", "period",
    "alert_below", "every", "at", "weekdays", "days", "nth_weekday", "cron", "segment", "name", "values",
    "percent", "control", "from", "to", "action", "channel", "template", "pool", "amount", "unit",
]  # fmt: skip
odd_configs = st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=6)


def shaped_like(config: dict):
    """Configs close to a valid one: some values replaced by odd JSON, nested too."""

    def mutate(draw_values):
        result = dict(config)
        for key, value in draw_values.items():
            result[key] = value
        return result

    return st.dictionaries(st.sampled_from(sorted(config) + FIELD_NAMES[:10]), json_values, max_size=3).map(
        mutate
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kinds=st.lists(st.sampled_from(list(CONFIGS) + ["teleport"]), min_size=0, max_size=8),
    data=st.data(),
)
def test_validation_never_crashes_on_a_well_formed_document(kinds, data):
    nodes = []
    for index, kind in enumerate(kinds):
        config = data.draw(odd_configs | shaped_like(CONFIGS.get(kind, {})))
        nodes.append({"key": f"k{index % 6}", "kind": kind, "config": config})
    keys = [f"k{i}" for i in range(7)]
    edges = data.draw(
        st.lists(
            st.fixed_dictionaries(
                {"from": st.sampled_from(keys), "to": st.sampled_from(keys)},
                optional={"port": st.sampled_from(["next", "yes", "no", "a", "A", "within", "other", ""])},
            ),
            max_size=10,
        )
    )
    doc = parse_document({"format": FORMAT, "name": "odd", "nodes": nodes, "edges": edges})
    result = validate_document(doc, CONTEXT)
    assert all(set(e) == {"node", "field", "message"} for e in result)
    assert all(isinstance(e["field"], str) and isinstance(e["message"], str) for e in result)
    # Deterministic: the same document gives the same errors in the same order.
    assert validate_document(doc, CONTEXT) == result
