import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from flows.document import (
    FORMAT,
    DocumentError,
    FlowSettings,
    document_settings,
    dump_document,
    graph_rows,
    parse_document,
)
from maestra.jsonvalues import MAX_DEPTH
from tests.flows.document_strategies import MIDDLE_KINDS, documents, every_variant_documents

SPEC_EXAMPLE = Path(__file__).parent / "fixtures" / "spec_example.json"


def spec_example() -> dict:
    return json.loads(SPEC_EXAMPLE.read_text())


def minimal(**extra) -> dict:
    return {"format": FORMAT, "name": "Welcome", **extra}


def problems(data) -> list[dict]:
    with pytest.raises(DocumentError) as raised:
        parse_document(data)
    return raised.value.errors


def fields(data) -> list[str]:
    return [error["field"] for error in problems(data)]


# --- parse_document: accepted documents --------------------------------------------


def test_it_accepts_the_spec_example_and_returns_it_unchanged():
    doc = spec_example()
    before = copy.deepcopy(doc)
    assert parse_document(doc) is doc
    assert doc == before


def test_it_accepts_json_text_and_bytes():
    text = SPEC_EXAMPLE.read_text()
    assert parse_document(text) == spec_example()
    assert parse_document(text.encode()) == spec_example()


def test_it_accepts_a_document_with_only_format_and_name():
    assert parse_document(minimal()) == minimal()


def test_it_accepts_nodes_without_title_config_or_position():
    doc = minimal(
        nodes=[{"key": "a-1_B", "kind": "event"}, {"key": "b", "kind": "wait", "position": None}],
        edges=[{"from": "a-1_B", "to": "b"}],
    )
    assert parse_document(doc) is doc


def test_it_accepts_an_unknown_kind_and_semantic_errors_for_validation_to_report():
    doc = minimal(
        timezone="Mars/Olympus",
        launch_limit={"mode": "sometimes", "period": "soon", "max_total": -1},
        schedule={"start_at": "yesterday", "end_at": None},
        nodes=[{"key": "x", "kind": "teleport", "config": {"anything": [1, {"b": None}]}}],
        edges=[{"from": "nowhere", "to": "x", "port": ""}],
    )
    assert parse_document(doc) is doc


def test_it_accepts_null_launch_limit_and_schedule():
    assert parse_document(minimal(launch_limit=None, schedule=None))


# --- parse_document: malformed documents ---------------------------------------------


def test_it_refuses_text_that_is_not_json():
    errors = problems('{"format": "maestra.flow/1",')
    assert errors[0]["field"] == ""
    assert "not valid JSON" in errors[0]["message"]


def test_it_refuses_nan_and_infinity_in_json_text():
    text = json.dumps(minimal(nodes=[{"key": "a", "kind": "wait", "position": {"x": 1, "y": 2}}]))
    assert fields(text.replace('"x": 1', '"x": NaN')) == [""]
    assert fields(text.replace('"x": 1', '"x": Infinity')) == [""]


@pytest.mark.parametrize("data", [[], "[]", '"text"', "3", 42, None, b"null"])
def test_it_refuses_a_document_that_is_not_an_object(data):
    assert problems(data) == [{"field": "", "message": "a flow document must be a JSON object"}]


def test_it_refuses_a_missing_format():
    doc = minimal()
    del doc["format"]
    assert fields(doc) == ["format"]


@pytest.mark.parametrize("value", ["maestra.flow/2", "", None, 1, ["maestra.flow/1"]])
def test_it_refuses_an_unknown_format(value):
    errors = problems(minimal(format=value))
    assert [e["field"] for e in errors] == ["format"]
    assert "unknown format" in errors[0]["message"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": 5}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"description": ["a"]}, "description"),
        ({"timezone": 1}, "timezone"),
        ({"nodes": {"a": {}}}, "nodes"),
        ({"edges": "a->b"}, "edges"),
        ({"launch_limit": "once"}, "launch_limit"),
        ({"launch_limit": {"mode": 1}}, "launch_limit.mode"),
        ({"launch_limit": {"period": 7}}, "launch_limit.period"),
        ({"launch_limit": {"max_total": "10"}}, "launch_limit.max_total"),
        ({"launch_limit": {"max_total": 1.5}}, "launch_limit.max_total"),
        ({"launch_limit": {"max_total": True}}, "launch_limit.max_total"),
        ({"launch_limit": {"every": "day"}}, "launch_limit.every"),
        ({"schedule": []}, "schedule"),
        ({"schedule": {"start_at": 1700000000}}, "schedule.start_at"),
        ({"schedule": {"end_at": {}}}, "schedule.end_at"),
        ({"schedule": {"stop_at": None}}, "schedule.stop_at"),
        ({"version": 1}, "version"),
    ],
)
def test_it_refuses_wrong_types_at_the_top_level(change, field):
    assert fields(minimal(**change)) == [field]


def test_it_refuses_a_missing_name():
    doc = minimal()
    del doc["name"]
    assert fields(doc) == ["name"]


def node(**fields_) -> dict:
    return {"key": "a", "kind": "wait", "config": {}, **fields_}


@pytest.mark.parametrize(
    ("bad_node", "field"),
    [
        ("a node", "nodes.0"),
        (["key", "a"], "nodes.0"),
        ({"kind": "wait"}, "nodes.0.key"),
        (node(key=""), "nodes.0.key"),
        (node(key=7), "nodes.0.key"),
        (node(key="has space"), "nodes.0.key"),
        (node(key="dot.ted"), "nodes.0.key"),
        (node(key="a\n"), "nodes.0.key"),
        (node(key="ключ"), "nodes.0.key"),
        (node(key="k" * 101), "nodes.0.key"),
        ({"key": "a"}, "nodes.0.kind"),
        (node(kind=None), "nodes.0.kind"),
        (node(kind="k" * 21), "nodes.0.kind"),
        (node(config=[]), "nodes.0.config"),
        (node(config=None), "nodes.0.config"),
        (node(config="{}"), "nodes.0.config"),
        (node(title=None), "nodes.0.title"),
        (node(title="t" * 201), "nodes.0.title"),
        (node(position=[1, 2]), "nodes.0.position"),
        (node(position={"x": 1}), "nodes.0.position"),
        (node(position={"x": 1, "y": "2"}), "nodes.0.position"),
        (node(position={"x": 1, "y": True}), "nodes.0.position"),
        (node(position={"x": 1, "y": 2, "z": 3}), "nodes.0.position"),
        (node(ports=["next"]), "nodes.0.ports"),
    ],
)
def test_it_refuses_a_malformed_node(bad_node, field):
    assert fields(minimal(nodes=[bad_node])) == [field]


@pytest.mark.parametrize(
    ("bad_edge", "field"),
    [
        ("a->b", "edges.0"),
        ({"to": "b"}, "edges.0.from"),
        ({"from": "a"}, "edges.0.to"),
        ({"from": 1, "to": "b"}, "edges.0.from"),
        ({"from": "a", "to": None}, "edges.0.to"),
        ({"from": "a", "to": "b", "port": None}, "edges.0.port"),
        ({"from": "a", "to": "b", "port": 1}, "edges.0.port"),
        ({"from": "a", "to": "b", "port": "p" * 101}, "edges.0.port"),
        ({"from": "a", "to": "b", "label": "x"}, "edges.0.label"),
    ],
)
def test_it_refuses_a_malformed_edge(bad_edge, field):
    assert fields(minimal(edges=[bad_edge])) == [field]


def test_it_collects_every_problem_not_just_the_first():
    doc = {
        "format": "maestra.flow/9",
        "name": None,
        "timezone": 3,
        "nodes": [node(), node(key=""), "x", node(config=[], title=5)],
        "edges": [{"from": "a"}, 5],
    }
    assert fields(doc) == [
        "format",
        "name",
        "timezone",
        "nodes.1.key",
        "nodes.2",
        "nodes.3.title",
        "nodes.3.config",
        "edges.0.to",
        "edges.1",
    ]


@pytest.mark.parametrize(
    ("value", "where"),
    [
        (float("nan"), "nodes.0.config.x"),
        (float("inf"), "nodes.0.config.x"),
        ({1, 2}, "nodes.0.config.x"),
        (datetime(2025, 1, 1, tzinfo=UTC), "nodes.0.config.x"),
        ((1, 2), "nodes.0.config.x"),
        ({"deep": [{"x": b"bytes"}]}, "nodes.0.config.x.deep.0.x"),
    ],
)
def test_it_refuses_python_values_that_are_not_json(value, where):
    errors = problems(minimal(nodes=[node(config={"x": value})]))
    assert where in [error["field"] for error in errors]


def test_it_refuses_non_string_object_keys():
    assert fields(minimal(nodes=[node(config={1: "one"})])) == ["nodes.0.config"]


def nested(levels: int) -> dict:
    rule = {"field": "points", "op": "gt", "value": 1}
    for _ in range(levels):
        rule = {"not": rule}
    return rule


def test_it_accepts_nesting_up_to_the_limit():
    # document > nodes > node > config > rule: 4 levels before the rule.
    doc = minimal(nodes=[node(config={"rule": nested(MAX_DEPTH - 5)})])
    assert parse_document(doc) is doc
    assert parse_document(dump_document(doc)) == doc


def test_it_refuses_a_document_nested_one_level_too_deep():
    # SPEC §12: documents nest at most 32 levels (it was 64).
    assert MAX_DEPTH == 32
    errors = problems(minimal(nodes=[node(config={"rule": nested(MAX_DEPTH - 4)})]))
    assert [error["message"] for error in errors] == ["nested more than 32 levels deep"]


def test_it_refuses_lone_surrogates_and_nul_anywhere_in_a_document():
    doc = minimal(
        nodes=[node(title="ok", config={"rule": {"field": "points", "op": "eq", "value": "a\ud800"}})]
    )
    assert fields(doc) == ["nodes.0.config.rule.value"]
    assert "valid Unicode" in problems(doc)[0]["message"]
    assert fields(minimal(name="Wel\udfffcome")) == ["name"]
    assert fields(minimal(nodes=[node(config={"\ud800": 1})])) == ["nodes.0.config"]
    # NUL: PostgreSQL stores it neither in text nor in jsonb.
    assert fields(minimal(nodes=[node(title="a\x00b")])) == ["nodes.0.title"]
    assert fields(minimal(nodes=[node(config={"x": ["\x00"]})])) == ["nodes.0.config.x.0"]
    # From JSON text too: the escape parses to a lone surrogate.
    assert fields('{"format": "maestra.flow/1", "name": "\\ud800"}') == ["name"]


def test_it_refuses_nesting_beyond_the_limit_without_crashing():
    errors = problems(minimal(nodes=[node(config={"rule": nested(5000)})]))
    assert len(errors) == 1
    assert errors[0]["field"].startswith("nodes.0.config.rule.not.not.")
    assert "nested more than" in errors[0]["message"]
    assert fields("[" * 100_000 + "]" * 100_000) == [""]


def test_the_error_message_lists_the_problems():
    with pytest.raises(DocumentError) as raised:
        parse_document(minimal(name=1, timezone=2))
    assert str(raised.value) == "name: must be a string; timezone: must be a string"


# --- Settings -------------------------------------------------------------------


def test_settings_default_when_the_document_says_nothing():
    assert document_settings(minimal()) == FlowSettings(
        timezone="UTC",
        launch_limit_mode="every_time",
        launch_limit_period=None,
        launch_limit_max_total=None,
        start_at=None,
        end_at=None,
    )


def test_settings_read_the_spec_example():
    settings = document_settings(spec_example())
    assert settings.timezone == "Europe/Berlin"
    assert settings.launch_limit_mode == "periodic"
    assert settings.launch_limit_period == timedelta(days=7)
    assert settings.launch_limit_max_total is None


def test_settings_read_every_value():
    doc = minimal(
        timezone="America/New_York",
        launch_limit={"mode": "once", "period": "PT36H", "max_total": 3},
        schedule={"start_at": "2025-06-01T10:00:00+02:00", "end_at": "2025-07-01T00:00:00Z"},
    )
    settings = document_settings(doc)
    assert settings.timezone == "America/New_York"
    assert settings.launch_limit_mode == "once"
    # A leftover period of a limit that is not periodic does not apply.
    assert settings.launch_limit_period is None
    assert settings.launch_limit_max_total == 3
    assert settings.start_at == datetime(2025, 6, 1, 8, tzinfo=UTC)
    assert settings.start_at.utcoffset() == timedelta(hours=2)
    assert settings.end_at == datetime(2025, 7, 1, tzinfo=UTC)


def test_settings_approximate_calendar_periods():
    doc = minimal(launch_limit={"mode": "periodic", "period": "P1M1W"})
    assert document_settings(doc).launch_limit_period == timedelta(days=37)


def test_settings_read_invalid_values_as_their_defaults():
    # A draft with errors is still stored; validation reports these.
    doc = minimal(
        timezone="Mars/Olympus",
        launch_limit={"mode": "sometimes", "period": "-P1D", "max_total": 0},
        schedule={"start_at": "2025-06-01T10:00:00", "end_at": "tomorrow"},
    )
    assert document_settings(doc) == FlowSettings()
    doc["launch_limit"] = {"mode": "periodic", "period": "P99999999999Y"}
    assert document_settings(doc) == FlowSettings(launch_limit_mode="periodic")


def test_settings_keep_the_offset_of_start_and_end():
    doc = minimal(schedule={"start_at": "2025-06-01T10:00:00-05:30"})
    assert document_settings(doc).start_at.tzinfo == timezone(timedelta(hours=-5, minutes=-30))


def test_reading_settings_never_writes_defaults_into_the_document():
    doc = minimal()
    document_settings(doc)
    graph_rows(doc)
    assert doc == minimal()


# --- Graph rows ------------------------------------------------------------------


def test_graph_rows_project_nodes_and_edges_with_defaults():
    nodes, edges = graph_rows(spec_example())
    assert nodes[0] == {
        "key": "start",
        "kind": "event",
        "title": "Subscription changed",
        "config": spec_example()["nodes"][0]["config"],
        "position": None,
    }
    assert nodes[2] == {
        "key": "day",
        "kind": "wait",
        "title": "",
        "config": {"mode": "fixed", "duration": "P1D"},
        "position": None,
    }
    assert [n["key"] for n in nodes] == ["start", "ask", "day", "still", "remind"]
    assert edges == [
        {"from_key": "start", "port": "next", "to_key": "ask"},
        {"from_key": "ask", "port": "next", "to_key": "day"},
        {"from_key": "day", "port": "next", "to_key": "still"},
        {"from_key": "still", "port": "yes", "to_key": "remind"},
    ]


def test_graph_rows_of_a_node_without_config_and_with_a_position():
    nodes, edges = graph_rows(minimal(nodes=[{"key": "a", "kind": "wait", "position": {"x": 1.5, "y": -2}}]))
    assert nodes == [{"key": "a", "kind": "wait", "title": "", "config": {}, "position": {"x": 1.5, "y": -2}}]
    assert edges == []


def test_graph_rows_of_a_document_without_nodes_or_edges():
    assert graph_rows(minimal()) == ([], [])


# --- Dump ---------------------------------------------------------------------------


def test_dump_keeps_key_order_and_unicode():
    doc = {"name": "Grüße 🎉", "format": FORMAT, "nodes": [{"kind": "wait", "key": "z"}]}
    text = dump_document(doc)
    assert text == '{"name": "Grüße 🎉", "format": "maestra.flow/1", "nodes": [{"kind": "wait", "key": "z"}]}'


def test_dump_pretty_prints_with_an_indent():
    text = dump_document(minimal(), indent=2)
    assert text == '{\n  "format": "maestra.flow/1",\n  "name": "Welcome"\n}'


def test_the_spec_example_round_trips():
    text = dump_document(spec_example())
    assert json.loads(dump_document(parse_document(text))) == spec_example()
    assert dump_document(parse_document(text)) == text


@pytest.mark.parametrize("doc", every_variant_documents())
def test_a_document_with_every_config_variant_round_trips(doc):
    text = dump_document(doc)
    assert json.loads(dump_document(parse_document(text))) == doc
    assert dump_document(parse_document(text), indent=2) == dump_document(doc, indent=2)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_every_generated_document_parses_and_round_trips(doc):
    text = dump_document(doc)
    assert json.loads(dump_document(parse_document(text))) == doc
    # Key order survives too: export prints exactly what came in.
    assert dump_document(parse_document(text)) == text
    assert dump_document(parse_document(copy.deepcopy(doc)), indent=2) == dump_document(doc, indent=2)


@settings(max_examples=10, deadline=None)
@given(documents())
def test_generated_documents_cover_every_node_kind(doc):
    kinds = {node["kind"] for node in doc["nodes"]}
    assert set(MIDDLE_KINDS) <= kinds
    assert kinds & {"event", "schedule"}
