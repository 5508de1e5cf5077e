"""The A/B winner (SPEC §13): the engine's tick runs the two-proportion test
on each A/B node with a `winner` setting and records the winner once, with
its time, counts and p-value, in the audit log too; with `auto`, customers
without a stored assignment then go to the winner (the control keeps its
share, stored assignments stay sticky)."""

from collections import Counter
from datetime import timedelta

import pytest

from customers.services import store_events
from flows.engine.ab_winner import decide, two_proportion_p_value, variant_figures
from flows.engine.entry import start_flow_for_segment
from flows.engine.tick import tick
from flows.models import ABAssignment, ABWinner, Node
from flows.nodes.ab_winner_config import WinnerSetting
from flows.selectors.canvas_stats import ab_test_stats, canvas_stats
from flows.selectors.stats import flow_stats
from maestra.audit.models import AuditEntry
from tests.flows import engine_kit as kit
from tests.flows.engine_kit import at, utc
from tests.maestra.kit import empty_cache  # noqa: F401 (autouse: the A/B check throttle is cached)

NOW = utc(2026, 6, 1, 9, 0)
LATER = NOW + timedelta(days=2)
VARIANTS = [
    {"name": "A", "percent": 45},
    {"name": "B", "percent": 45},
    {"name": "control", "percent": 10, "control": True},
]
WINNER = {"metric": "goal", "min_per_variant": 50, "confidence": 0.95, "auto": True}


def ab_doc(winner=WINNER, variants=VARIANTS) -> dict:
    """visit → A/B (variants unwired: the runs end there)."""
    config = {"variants": variants}
    if winner is not None:
        config["winner"] = winner
    return kit.document(
        [kit.event_start("visit"), kit.node("ab", "ab_test", **config)], [kit.edge("start", "ab")]
    )


def enter(flow, prefix: str, size: int, moment) -> dict[str, list[int]]:
    """`size` new customers enter the flow at `moment`; {variant: customer ids}."""
    ids = kit.bulk_customers(size, prefix=prefix, segment=prefix)
    with at(moment):
        assert start_flow_for_segment(flow=flow, segment_slug=prefix) == size
        tick(deliver=False)
    groups: dict[str, list[int]] = {}
    for customer_id, variant in ABAssignment.objects.filter(flow=flow, customer_id__in=ids).values_list(
        "customer_id", "variant"
    ):
        groups.setdefault(variant, []).append(customer_id)
    return groups


def convert(customer_ids: list[int], moment, event_type: str = "order_created", payload=None) -> None:
    store_events(
        events=[
            {"customer_id": c, "type": event_type, "occurred_at": moment, "payload": payload or {"total": 10}}
            for c in customer_ids
        ]
    )


def share(ids: list[int], fraction: float) -> list[int]:
    return ids[: round(len(ids) * fraction)]


def converted(a: float, b: float, *, winner=WINNER, after=timedelta(hours=5)):
    """The A/B flow launched at NOW with 300 customers in; the shares `a` of A
    and `b` of B order `after` that. The flow and its groups."""
    with at(NOW):
        flow = kit.launch(ab_doc(winner))
    groups = enter(flow, "first-", 300, NOW)
    convert(share(groups["A"], a), NOW + after)
    convert(share(groups["B"], b), NOW + after)
    return flow, groups


def winner_entries():
    return AuditEntry.objects.filter(action="flow.ab_winner")


# --- the test itself -------------------------------------------------------------------


def test_the_two_proportion_test_matches_known_values():
    # 60/100 against 40/100: pooled 0.5, z = 2.828, two-sided p = 0.00468.
    assert round(two_proportion_p_value(60, 100, 40, 100), 5) == 0.00468
    assert two_proportion_p_value(40, 100, 60, 100) == two_proportion_p_value(60, 100, 40, 100)
    assert round(two_proportion_p_value(50, 100, 50, 100), 6) == 1.0
    # Cannot tell: no sample, or both rates 0 % / 100 %.
    assert two_proportion_p_value(0, 0, 5, 10) == 1.0
    assert two_proportion_p_value(0, 50, 0, 50) == 1.0
    assert two_proportion_p_value(50, 50, 50, 50) == 1.0


def test_decide_needs_the_minimum_sample_and_a_win_over_every_other_variant():
    from flows.engine.ab_winner import Figures

    setting = WinnerSetting(metric="goal", min_per_variant=100, confidence=0.95, auto=False)
    strong = [Figures("A", False, 100, 60), Figures("B", False, 100, 40), Figures("control", True, 20, 2)]
    verdict = decide(strong, setting)
    assert verdict.variant == "A" and verdict.p_value < 0.05
    assert [row["variant"] for row in verdict.counts] == ["A", "B", "control"]
    assert verdict.counts[0]["p_value"] is None and verdict.counts[1]["p_value"] < 0.05
    # One variant short of the minimum: no verdict yet.
    assert decide([Figures("A", False, 100, 60), Figures("B", False, 99, 10)], setting) is None
    # Beats B but not the control (which does better): no winner.
    assert decide([*strong[:2], Figures("control", True, 40, 30)], setting) is None
    # A higher confidence than the evidence carries: no winner.
    strict = WinnerSetting(metric="goal", min_per_variant=100, confidence=0.999, auto=False)
    assert decide(strong[:2], strict) is None
    # A tie at the top: no winner.
    assert decide([Figures("A", False, 100, 50), Figures("B", False, 100, 50)], setting) is None


# --- through the engine -----------------------------------------------------------------


@pytest.mark.django_db
def test_a_significant_difference_is_recorded_once_with_its_p_value_and_audited():
    flow, groups = converted(0.6, 0.1)
    with at(LATER):
        counts = tick(deliver=False)
    assert counts["ab_winners.decided"] == 1
    winner = ABWinner.objects.get(flow=flow, node_key="ab")
    assert (winner.variant, winner.metric, winner.confidence) == ("A", "goal", 0.95)
    assert winner.decided_at == LATER and winner.version_id == flow.live_version_id
    assert 0 < winner.p_value < 0.05
    by_variant = {row["variant"]: row for row in winner.counts}
    assert by_variant["A"]["entered"] == len(groups["A"])
    assert by_variant["A"]["converted"] == len(share(groups["A"], 0.6))
    assert by_variant["B"]["converted"] == len(share(groups["B"], 0.1))
    assert by_variant["control"]["control"] is True and by_variant["control"]["converted"] == 0
    assert winner.p_value == max(by_variant["B"]["p_value"], by_variant["control"]["p_value"])
    # The audit log says so, once.
    entry = winner_entries().get()
    assert entry.actor == "engine" and entry.at == LATER
    assert entry.data["node"] == "ab" and entry.data["variant"] == "A"
    assert entry.data["p_value"] == winner.p_value and entry.data["counts"] == winner.counts
    # Later ticks (or a second worker) record nothing more.
    with at(LATER + timedelta(hours=1)):
        assert "ab_winners.decided" not in tick(deliver=False)
    assert ABWinner.objects.count() == 1 and winner_entries().count() == 1


@pytest.mark.django_db
def test_recording_twice_keeps_the_first_winner():
    from flows.engine.ab_winner import Candidate, Verdict, record

    with at(NOW):
        flow = kit.launch(ab_doc())
    setting = WinnerSetting(metric="goal", min_per_variant=50, confidence=0.95, auto=True)
    candidate = Candidate(flow.pk, flow.live_version_id, "ab", VARIANTS, setting)
    with at(LATER):
        assert record(candidate, Verdict("A", 0.001, [])) is not None
        # What a crash between deciding and recording, or a second worker, would do.
        assert record(candidate, Verdict("B", 0.002, [])) is None
    assert list(ABWinner.objects.values_list("variant", flat=True)) == ["A"]
    assert winner_entries().count() == 1


@pytest.mark.django_db
def test_no_winner_without_significance():
    converted(0.3, 0.28)
    with at(LATER):
        counts = tick(deliver=False)
    assert counts["ab_winners.checked"] == 1 and "ab_winners.decided" not in counts
    assert not ABWinner.objects.exists() and not winner_entries().exists()


@pytest.mark.django_db
def test_no_winner_before_the_minimum_sample_however_large_the_difference():
    with at(NOW):
        flow = kit.launch(ab_doc({**WINNER, "min_per_variant": 200}))
    groups = enter(flow, "first-", 300, NOW)
    convert(groups["A"], NOW + timedelta(hours=5))
    with at(LATER):
        counts = tick(deliver=False)
    # The hourly counters show the sample is short: not even tested.
    assert "ab_winners.checked" not in counts
    assert not ABWinner.objects.exists()


@pytest.mark.django_db
def test_conversions_outside_the_attribution_window_do_not_count():
    with at(NOW):
        flow = kit.launch(ab_doc())
    groups = enter(flow, "first-", 300, NOW)
    convert(share(groups["A"], 0.6), NOW + timedelta(days=8))  # the window is P7D
    convert(share(groups["B"], 0.1), NOW - timedelta(hours=1))  # before the pass
    with at(NOW + timedelta(days=9)):
        tick(deliver=False)
    assert not ABWinner.objects.exists()


@pytest.mark.django_db
def test_no_winner_setting_no_test():
    with at(NOW):
        flow = kit.launch(ab_doc(winner=None))
    groups = enter(flow, "first-", 300, NOW)
    convert(groups["A"], NOW + timedelta(hours=5))
    with at(LATER):
        assert "ab_winners.checked" not in tick(deliver=False)
    assert not ABWinner.objects.exists()


@pytest.mark.django_db
def test_the_click_metric_counts_clicks_on_this_flows_messages():
    with at(NOW):
        flow = kit.launch(ab_doc({**WINNER, "metric": "click"}))
    groups = enter(flow, "first-", 300, NOW)
    # Orders do not count for the click metric, nor clicks on another flow's mail.
    convert(groups["B"], NOW + timedelta(hours=1))
    convert(groups["B"], NOW + timedelta(hours=1), "email_clicked", {"flow": flow.pk + 1000})
    convert(share(groups["A"], 0.5), NOW + timedelta(hours=2), "email_clicked", {"flow": flow.pk})
    with at(LATER):
        tick(deliver=False)
    winner = ABWinner.objects.get()
    assert (winner.variant, winner.metric) == ("A", "click")
    assert {row["variant"]: row["converted"] for row in winner.counts}["B"] == 0


@pytest.mark.django_db
def test_the_counts_are_the_canvas_statistics_counts():
    """Passes twice, events between and after: one query per node gives what
    the canvas statistics count (an event counts for the latest pass before it)."""
    with at(NOW):
        flow = kit.launch(ab_doc(winner=None))
    groups = enter(flow, "first-", 200, NOW)
    everyone = [c for ids in groups.values() for c in ids]
    convert(everyone[::3], NOW + timedelta(hours=1))
    with at(NOW + timedelta(days=1)):
        # Everyone passes again (sticky variant); more orders after that.
        from flows.engine.entry import start_flow_for_segment as again

        again(flow=flow, segment_slug="first-")
        tick(deliver=False)
    convert(everyone[::2], NOW + timedelta(days=1, hours=2))
    convert(everyone[::5], NOW + timedelta(days=1, hours=3))
    nodes = list(Node.objects.filter(version=flow.live_version).values("key", "kind", "config"))
    expected = ab_test_stats(
        flow=flow, nodes=nodes, since=NOW - timedelta(days=1), until=NOW + timedelta(days=30)
    )
    figures = variant_figures(flow_id=flow.pk, node_key="ab", variants=VARIANTS, metric="goal")
    assert {f.variant: (f.entered, f.converted) for f in figures} == {
        row["variant"]: (row["entered"], row["conversions"]) for row in expected["ab"]["variants"]
    }
    assert sum(f.entered for f in figures) == 400


# --- auto -----------------------------------------------------------------------------------


def _decided_flow(auto: bool):
    flow, groups = converted(0.6, 0.1, winner={**WINNER, "auto": auto})
    with at(LATER):
        tick(deliver=False)
    assert ABWinner.objects.get().variant == "A"
    return flow, groups


@pytest.mark.django_db
def test_with_auto_new_customers_go_to_the_winner_and_the_control_keeps_its_share():
    flow, groups = _decided_flow(auto=True)
    late = enter(flow, "late-", 1000, LATER + timedelta(hours=1))
    assert set(late) == {"A", "control"}
    # The draw still decides the control's share (10 %).
    assert 60 <= len(late["control"]) <= 140
    # Stored assignments stay sticky: B's customers come back to B.
    with at(LATER + timedelta(hours=2)):
        start_flow_for_segment(flow=flow, segment_slug="first-")
        tick(deliver=False)
    assert Counter(
        ABAssignment.objects.filter(customer_id__in=groups["B"]).values_list("variant", flat=True)
    ) == {"B": len(groups["B"])}
    from flows.models import NodePass

    ports = Counter(
        NodePass.objects.filter(
            run__customer_id__in=groups["B"], run__clock__gte=LATER, node_key="ab"
        ).values_list("port", flat=True)
    )
    assert ports == {"B": len(groups["B"])}


@pytest.mark.django_db
def test_without_auto_new_customers_are_still_drawn_among_all_variants():
    flow, _groups = _decided_flow(auto=False)
    late = enter(flow, "late-", 400, LATER + timedelta(hours=1))
    assert set(late) == {"A", "B", "control"}


@pytest.mark.django_db
def test_auto_ignores_a_winner_the_new_version_no_longer_has():
    flow, _groups = _decided_flow(auto=True)
    renamed = [{"name": "A2", "percent": 45}, *VARIANTS[1:]]
    with at(LATER):
        flow = kit.relaunch(flow, ab_doc(variants=renamed))
    late = enter(flow, "late-", 400, LATER + timedelta(hours=1))
    assert set(late) == {"A2", "B", "control"}


# --- shown in the statistics ---------------------------------------------------------------


@pytest.mark.django_db
def test_the_winner_is_in_the_flow_and_canvas_statistics():
    flow, _groups = _decided_flow(auto=True)
    winner = ABWinner.objects.get()
    stats = flow_stats(flow=flow, since=NOW - timedelta(days=1), until=LATER + timedelta(days=1))
    ab = next(n for n in stats["nodes"] if n["key"] == "ab")
    assert ab["ab_winner"]["variant"] == "A"
    assert ab["ab_winner"]["p_value"] == winner.p_value
    assert ab["ab_winner"]["decided_at"] == LATER
    assert ab["ab_winner"]["counts"] == winner.counts
    assert next(n for n in stats["nodes"] if n["key"] == "start")["ab_winner"] is None
    canvas = canvas_stats(flow=flow, since=NOW - timedelta(days=1), until=LATER + timedelta(days=1))
    assert canvas["nodes"]["ab"]["ab_winner"]["variant"] == "A"


@pytest.mark.django_db
def test_the_admin_lists_the_winner_read_only(client, django_user_model):
    from django.urls import reverse

    _decided_flow(auto=True)
    client.force_login(
        django_user_model.objects.create_superuser("admin", "admin@example.com", password=None)
    )
    listing = client.get(reverse("admin:flows_abwinner_changelist"))
    assert listing.status_code == 200 and b"0.95" in listing.content
    winner = ABWinner.objects.get()
    page = client.get(reverse("admin:flows_abwinner_change", args=[winner.pk]))
    assert page.status_code == 200 and b"Save" not in page.content
    assert client.get(reverse("admin:flows_abwinner_add")).status_code == 403


PARALLEL = 4


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_workers_deciding_at_the_same_moment_record_one_winner(settings, monkeypatch):
    """Real threads, each with its own PostgreSQL connection, all seeing no
    winner yet: the unique constraint lets one insert win; the others'
    insert and audit entry roll back together."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    from flows.engine import ab_winner

    flow, _groups = converted(0.6, 0.1)
    barrier = threading.Barrier(PARALLEL)
    # No throttle: every worker makes the test and tries to record.
    settings.MAESTRA_AB_WINNER_CHECK_SECONDS = 0
    real_candidates = ab_winner.candidates

    def candidates_then_wait():
        # Every worker has read "no winner yet" before any of them records
        # one (a barrier before the call alone leaves a slow thread free to
        # start after the first commit and find nothing to test).
        found = real_candidates()
        barrier.wait()
        return found

    monkeypatch.setattr(ab_winner, "candidates", candidates_then_wait)

    def work(_):
        try:
            return ab_winner.decide_winners()
        finally:
            connection.close()

    # time-machine patches the clock process-wide: the threads see LATER too.
    with at(LATER), ThreadPoolExecutor(PARALLEL) as pool:
        results = list(pool.map(work, range(PARALLEL)))
    assert [result["checked"] for result in results] == [1] * PARALLEL
    assert sum(result["decided"] for result in results) == 1
    assert ABWinner.objects.filter(flow=flow).count() == 1
    assert winner_entries().count() == 1


@pytest.mark.django_db
def test_a_node_is_tested_at_most_once_per_check_interval(settings):
    settings.MAESTRA_AB_WINNER_CHECK_SECONDS = 600
    # The tick that let them in tested the node: nothing converted yet.
    converted(0.6, 0.1, after=timedelta(minutes=2))
    with at(NOW + timedelta(minutes=5)):
        assert "ab_winners.checked" not in tick(deliver=False)
    assert not ABWinner.objects.exists()
    with at(NOW + timedelta(minutes=11)):
        assert tick(deliver=False)["ab_winners.decided"] == 1
    assert ABWinner.objects.get().decided_at == NOW + timedelta(minutes=11)


@pytest.mark.django_db
def test_a_flow_with_a_goal_is_judged_by_its_goal_not_the_site_wide_types():
    doc = ab_doc()
    doc["goal"] = {"event_type": "signed_up", "filter": {"field": "event.plan", "op": "eq", "value": "pro"}}
    with at(NOW):
        flow = kit.launch(doc)
    groups = enter(flow, "goal-", 300, NOW)
    # Site-wide conversions favour A, the flow's goal favours B (only "pro" counts).
    convert(share(groups["A"], 0.6), NOW + timedelta(hours=5))
    convert(share(groups["A"], 0.6), NOW + timedelta(hours=5), "signed_up", {"plan": "free"})
    convert(share(groups["B"], 0.5), NOW + timedelta(hours=5), "signed_up", {"plan": "pro"})
    with at(LATER):
        assert tick(deliver=False)["ab_winners.decided"] == 1
    winner = ABWinner.objects.get(flow=flow, node_key="ab")
    by_variant = {row["variant"]: row for row in winner.counts}
    assert winner.variant == "B"
    assert by_variant["A"]["converted"] == 0
    assert by_variant["B"]["converted"] == len(share(groups["B"], 0.5))
    # The canvas statistics count the same conversions.
    nodes = list(Node.objects.filter(version=flow.live_version).values("key", "kind", "config"))
    stats = ab_test_stats(flow=flow, nodes=nodes, since=NOW - timedelta(days=1), until=LATER)
    assert {row["variant"]: row["conversions"] for row in stats["ab"]["variants"]} == {
        row["variant"]: row["converted"] for row in winner.counts
    }
