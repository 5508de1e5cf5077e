"""The A/B `winner` setting through the API (SPEC §13): the validator used
at save and run time accepts the documented shape, names the field of a bad
one (the draft is stored invalid; launching it is refused with the JSON
error shape), the export keeps what was saved, and the stats API shows the
recorded winner."""

from datetime import timedelta

import pytest

from flows.engine.tick import tick
from flows.models import ABWinner, Flow
from flows.nodes import get_kind
from flows.nodes.base import ValidationContext
from tests.flows.engine_kit import at, utc
from tests.helpers import assert_json_errors

NOW = utc(2026, 6, 1, 9, 0)
VARIANTS = [
    {"name": "A", "percent": 45},
    {"name": "B", "percent": 45},
    {"name": "control", "percent": 10, "control": True},
]
GOOD = {"metric": "goal", "min_per_variant": 100, "confidence": 0.95, "auto": True}


def document(winner) -> dict:
    config = {"variants": VARIANTS}
    if winner is not ...:
        config["winner"] = winner
    return {
        "format": "maestra.flow/1",
        "name": "A/B winner",
        "nodes": [
            {"key": "start", "kind": "event", "config": {"event_type": "visit"}},
            {"key": "ab", "kind": "ab_test", "config": config},
        ],
        "edges": [{"from": "start", "to": "ab"}],
    }


def fields(winner) -> list[str]:
    config = {"variants": VARIANTS, "winner": winner}
    return [problem.field for problem in get_kind("ab_test").validate(config, ValidationContext())]


@pytest.mark.parametrize(
    "winner",
    [
        None,
        GOOD,
        {"metric": "click"},
        {"metric": "goal", "auto": False},
        {"metric": "goal", "min_per_variant": 10, "confidence": 0.5},
        {"metric": "goal", "confidence": 0.99},
    ],
)
def test_the_validator_accepts_the_documented_winner_shapes(winner):
    assert fields(winner) == []


@pytest.mark.parametrize(
    ("winner", "expected"),
    [
        ("goal", ["winner"]),
        ([GOOD], ["winner"]),
        ({}, ["winner.metric"]),
        ({**GOOD, "metric": "revenue"}, ["winner.metric"]),
        ({**GOOD, "metric": None}, ["winner.metric"]),
        ({**GOOD, "min_per_variant": 0}, ["winner.min_per_variant"]),
        ({**GOOD, "min_per_variant": 9}, ["winner.min_per_variant"]),
        ({**GOOD, "min_per_variant": 100.5}, ["winner.min_per_variant"]),
        ({**GOOD, "min_per_variant": True}, ["winner.min_per_variant"]),
        ({**GOOD, "min_per_variant": "100"}, ["winner.min_per_variant"]),
        ({**GOOD, "confidence": 1}, ["winner.confidence"]),
        ({**GOOD, "confidence": 95}, ["winner.confidence"]),
        ({**GOOD, "confidence": 0.4}, ["winner.confidence"]),
        ({**GOOD, "confidence": "0.95"}, ["winner.confidence"]),
        ({**GOOD, "confidence": True}, ["winner.confidence"]),
        ({**GOOD, "auto": "yes"}, ["winner.auto"]),
        ({**GOOD, "auto": 1}, ["winner.auto"]),
        ({**GOOD, "pick": "A"}, ["winner.pick"]),
    ],
)
def test_the_validator_names_the_field_of_a_bad_winner(winner, expected):
    assert fields(winner) == expected


@pytest.mark.django_db
def test_a_bad_winner_is_stored_as_an_invalid_draft_naming_the_field_and_cannot_launch(api):
    response = api.post("/api/v1/flows", document({**GOOD, "confidence": 2}), format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "draft"
    assert [(e["node"], e["field"]) for e in body["errors"]] == [("ab", "winner.confidence")]
    errors = assert_json_errors(api.post(f"/api/v1/flows/{body['id']}/launch"), 409)
    assert any(e.get("node") == "ab" and e["field"] == "winner.confidence" for e in errors)
    assert Flow.objects.get(pk=body["id"]).status == "draft"
    # Fixed through the draft API: valid, and the export keeps what was saved.
    fixed = api.put(f"/api/v1/flows/{body['id']}/draft", document(GOOD), format="json").json()
    assert (fixed["status"], fixed["errors"]) == ("ready", [])
    exported = api.get(f"/api/v1/flows/{body['id']}/document").json()
    assert exported["nodes"][1]["config"]["winner"] == GOOD


@pytest.mark.django_db
def test_a_malformed_winner_is_refused_with_the_json_error_shape(api):
    response = api.post("/api/v1/flows", document({"metric": "goal", "auto": "sometimes"}), format="json")
    assert response.json()["errors"] == [
        {"node": "ab", "field": "winner.auto", "message": "must be true or false"}
    ]
    flow_id = response.json()["id"]
    assert_json_errors(api.post(f"/api/v1/flows/{flow_id}/launch"), 409)


@pytest.mark.django_db
def test_the_stats_api_shows_the_recorded_winner(api):
    with at(NOW):
        flow_id = api.post("/api/v1/flows", document(GOOD), format="json").json()["id"]
        assert api.post(f"/api/v1/flows/{flow_id}/launch").status_code == 202
        tick(deliver=False)
    flow = Flow.objects.get(pk=flow_id)
    counts = [
        {"variant": "A", "control": False, "entered": 120, "converted": 60, "rate": 0.5, "p_value": None},
        {
            "variant": "B",
            "control": False,
            "entered": 118,
            "converted": 20,
            "rate": 20 / 118,
            "p_value": 1e-6,
        },
    ]
    decided = {"variant": "A", "metric": "goal", "confidence": 0.95, "p_value": 1e-6, "counts": counts}
    ABWinner.objects.create(
        flow=flow,
        node_key="ab",
        version_id=flow.live_version_id,
        decided_at=NOW + timedelta(days=1),
        **decided,
    )
    body = api.get(f"/api/v1/flows/{flow_id}/stats", {"end": "2026-06-03T00:00:00Z"}).json()
    nodes = {node["key"]: node for node in body["nodes"]}
    assert nodes["start"]["ab_winner"] is None
    winner = nodes["ab"]["ab_winner"]
    assert winner["variant"] == "A" and winner["metric"] == "goal" and winner["p_value"] == 1e-6
    assert winner["decided_at"] == "2026-06-02T09:00:00Z"
    assert winner["counts"] == counts
