"""Versions: one draft per flow, launched versions frozen forever, the
version history."""

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import IntegrityError, transaction

from flows import lifecycle, selectors
from flows.lifecycle.drafts import write_draft
from flows.models import Edge, Flow, FlowVersion, FrozenVersionError, Node

S = Flow.Status
T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)


def fresh(flow: Flow) -> Flow:
    return Flow.objects.get(pk=flow.pk)


def graph_of(version: FlowVersion) -> tuple[list, list]:
    nodes = list(version.nodes.order_by("key").values_list("key", "kind", "title", "config", "position"))
    edges = list(version.edges.order_by("from_key", "port").values_list("from_key", "port", "to_key"))
    return nodes, edges


# --- one draft ---------------------------------------------------------------


@pytest.mark.django_db
def test_it_opens_the_same_draft_on_a_second_edit(flow_in):
    flow = flow_in(S.ACTIVE, with_draft=False)

    first = lifecycle.edit_flow(flow=flow)
    second = lifecycle.edit_flow(flow=flow)

    assert first.pk == second.pk
    assert flow.versions.filter(state="draft").count() == 1
    assert fresh(flow).status == S.ACTIVE


@pytest.mark.django_db
def test_it_copies_the_live_version_into_the_new_draft(flow_in):
    flow = flow_in(S.PAUSED, with_draft=False)
    live = fresh(flow).live_version

    draft = lifecycle.edit_flow(flow=flow)

    assert (draft.number, draft.state, draft.errors) == (2, "draft", [])
    assert draft.document_json == live.document_json
    assert graph_of(draft) == graph_of(live)
    assert (draft.timezone, draft.launch_limit_mode, draft.launch_limit_period) == (
        live.timezone,
        live.launch_limit_mode,
        live.launch_limit_period,
    )
    assert fresh(flow).status == S.PAUSED


@pytest.mark.django_db
def test_it_refuses_a_second_draft_row_in_the_database(flow_in):
    flow = flow_in(S.ACTIVE)

    with pytest.raises(IntegrityError), transaction.atomic():
        FlowVersion.objects.create(flow=flow, number=99, document_json="{}")

    assert flow.versions.filter(state="draft").count() == 1


@pytest.mark.django_db
def test_it_opens_the_draft_a_concurrent_edit_created(flow_in, monkeypatch):
    flow = flow_in(S.ACTIVE, with_draft=False)
    # Another Edit committed its draft after ours looked for one (which the row
    # lock prevents; the constraint is the last line of defence).
    FlowVersion.objects.create(flow=flow, number=7, document_json=fresh(flow).live_version.document_json)
    looked = []
    real_draft = Flow.draft

    def stale_first_look(self):
        looked.append(1)
        return None if len(looked) == 1 else real_draft.fget(self)

    monkeypatch.setattr(Flow, "draft", property(stale_first_look))

    draft = lifecycle.edit_flow(flow=flow)

    assert draft.number == 7
    assert flow.versions.filter(state="draft").count() == 1
    assert fresh(flow).status == S.ACTIVE


@pytest.mark.django_db
def test_it_creates_the_draft_of_a_live_flow_on_autosave(flow_in, spec_document):
    flow = flow_in(S.ACTIVE, with_draft=False)

    draft = lifecycle.save_draft(flow=flow, document=spec_document)

    assert draft.number == 2
    assert fresh(flow).draft.pk == draft.pk
    assert fresh(flow).live_version.number == 1


# --- frozen versions ---------------------------------------------------------


@pytest.mark.django_db
def test_it_never_changes_a_launched_version(flow_in, spec_document):
    flow = flow_in(S.ACTIVE, with_draft=False)
    live = fresh(flow).live_version
    text_before, graph_before = live.document_json, graph_of(live)

    # Through the ORM: the model guard refuses any change but the few bookkeeping fields.
    live.document_json = json.dumps({**spec_document, "name": "Changed"})
    with pytest.raises(FrozenVersionError):
        live.save()
    with pytest.raises(FrozenVersionError):
        live.save(update_fields=["document_json"])
    live.timezone = "Asia/Tokyo"
    with pytest.raises(FrozenVersionError):
        live.save(update_fields=["timezone", "stopped_at"])
    # Through the services' projection: nodes and edges of a launched version are not replaced.
    with pytest.raises(FrozenVersionError):
        write_draft(FlowVersion.objects.get(pk=live.pk), spec_document)
    # Autosave goes to a new draft, never to the live version.
    spec_document["nodes"].pop()
    spec_document["edges"].pop()
    draft = lifecycle.save_draft(flow=flow, document=spec_document)
    lifecycle.launch_flow(flow=flow, enqueue=False)
    lifecycle.finish_pending_launches()

    live = FlowVersion.objects.get(pk=live.pk)
    assert live.document_json == text_before
    assert graph_of(live) == graph_before
    assert live.timezone == "Europe/Berlin"
    assert draft.pk != live.pk and graph_of(FlowVersion.objects.get(pk=draft.pk)) != graph_before


@pytest.mark.django_db
def test_it_still_records_when_a_launched_version_stopped(flow_in):
    live = fresh(flow_in(S.ACTIVE, with_draft=False)).live_version

    live.stopped_at = T0
    live.save(update_fields=["stopped_at"])

    assert FlowVersion.objects.get(pk=live.pk).stopped_at == T0


@pytest.mark.django_db
def test_it_keeps_the_nodes_and_edges_of_every_launched_version(flow_in, spec_document):
    flow = flow_in(S.ACTIVE, with_draft=False)
    v1 = fresh(flow).live_version
    rows_before = (
        set(Node.objects.filter(version=v1).values_list("pk", "key")),
        set(Edge.objects.filter(version=v1).values_list("pk", "from_key")),
    )
    spec_document["nodes"][3]["title"] = "Still unconfirmed?"
    lifecycle.save_draft(flow=flow, document=spec_document)
    lifecycle.launch_flow(flow=flow, enqueue=False)
    lifecycle.finish_pending_launches()

    rows_after = (
        set(Node.objects.filter(version=v1).values_list("pk", "key")),
        set(Edge.objects.filter(version=v1).values_list("pk", "from_key")),
    )
    assert rows_after == rows_before
    assert fresh(flow).live_version.nodes.get(key="still").title == "Still unconfirmed?"


# --- history -----------------------------------------------------------------


@pytest.mark.django_db
def test_it_lists_the_version_history_newest_first(
    templates, spec_document, invalid_document, django_user_model
):
    ann = django_user_model.objects.create_user("ann")
    with time_machine.travel(T0, tick=False):
        flow = lifecycle.create_flow(document=spec_document)
        lifecycle.start_test(flow=flow, user=ann)
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        lifecycle.stop_test(flow=flow)
        lifecycle.launch_flow(flow=flow, user=ann, enqueue=False)
        lifecycle.finish_pending_launches()
    with time_machine.travel(T0 + timedelta(days=1), tick=False):
        lifecycle.save_draft(flow=flow, document=invalid_document)

    history = selectors.version_history(flow=fresh(flow))

    def row(item):
        return {k: v for k, v in item.items() if k != "id"}

    assert [row(item) for item in history] == [
        {
            "number": 3,
            "state": "draft",
            "is_test": False,
            "is_live": False,
            "created_at": T0 + timedelta(days=1),
            "launched_at": None,
            "stopped_at": None,
            "launched_by": None,
            "errors": 1,
        },
        {
            "number": 2,
            "state": "launched",
            "is_test": False,
            "is_live": True,
            "created_at": T0 + timedelta(hours=1),
            "launched_at": T0 + timedelta(hours=1),
            "stopped_at": None,
            "launched_by": "ann",
            "errors": 0,
        },
        {
            "number": 1,
            "state": "launched",
            "is_test": True,
            "is_live": False,
            "created_at": T0,
            "launched_at": T0,
            "stopped_at": T0 + timedelta(hours=1),
            "launched_by": "ann",
            "errors": 0,
        },
    ]


@pytest.mark.django_db
def test_it_opens_any_version_read_only_as_it_was(flow_in, spec_document):
    flow = flow_in(S.ACTIVE, with_draft=False)
    spec_document["name"] = "Second"
    lifecycle.save_draft(flow=flow, document=spec_document)

    assert selectors.get_version(flow=flow, number=1).document["name"] == "Subscription confirmation"
    assert selectors.get_version(flow=flow, number="2").document["name"] == "Second"
    assert selectors.get_version(flow=fresh(flow), number="live").number == 1
    assert selectors.get_version(flow=flow, number="draft").number == 2
    with pytest.raises(lifecycle.VersionNotFound, match="no version 9"):
        selectors.get_version(flow=flow, number=9)
