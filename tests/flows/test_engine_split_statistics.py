"""Splitter and A/B test in running flows (SPEC §5): the shares hold over a
large audience (chi-square, p > 0.001); a splitter draws afresh on every
pass, an A/B variant is sticky per customer across passes and versions
while it exists; the control variant gets no interactions."""

from collections import Counter

import pytest

from flows.engine.entry import start_flow_for_segment
from flows.engine.tick import tick
from flows.models import ABAssignment, NodePass, Run
from tests.flows import engine_kit as kit
from tests.flows.engine_kit import at, document, edge, event_start, node, steps, utc

NOW = utc(2026, 6, 1, 9, 0)
AUDIENCE = 10_000
# Chi-square critical values at p = 0.001 (1 and 2 degrees of freedom).
CHI2_P001 = {1: 10.828, 2: 13.816}
AB_VARIANTS = [
    {"name": "A", "percent": 45},
    {"name": "B", "percent": 45},
    {"name": "control", "percent": 10, "control": True},
]
EVERY_TIME = {"mode": "every_time", "period": None, "max_total": None}


def chi_square(observed: Counter, shares: dict[str, int]) -> float:
    total = sum(observed.values())
    return sum(
        (observed[name] - total * percent / 100) ** 2 / (total * percent / 100)
        for name, percent in shares.items()
    )


def exits(flow, node_key: str) -> Counter:
    return Counter(
        dict(
            (port, count)
            for (key, metric), count in kit.stats_of(flow).items()
            if key == node_key and metric.startswith("exit:")
            for port in [metric.removeprefix("exit:")]
        )
    )


def mark(field: str) -> dict:
    return {"action": "set_field", "field": field, "value": True}


def ab_doc(variants=AB_VARIANTS, *, wired: bool = True) -> dict:
    """ab → a steps node per variant, the control one included (wired, yet
    never reached); or the variants left unwired (the runs end at the A/B node)."""
    names = [variant["name"] for variant in variants]
    if not wired:
        return kit.start_then(node("ab", "ab_test", variants=variants))
    return document(
        [
            event_start("order_created"),
            node("ab", "ab_test", variants=variants),
            *[steps(f"step-{name}", mark(f"got_{name}")) for name in names],
        ],
        [edge("start", "ab"), *[edge("ab", f"step-{name}", name) for name in names]],
        launch_limit=EVERY_TIME,
    )


def splitter(shares: dict[str, int]) -> dict:
    """start → a splitter "split" with these shares, its branches unwired."""
    branches = [{"name": name, "percent": percent} for name, percent in shares.items()]
    return kit.start_then(node("split", "splitter", branches=branches))


def audience(size: int) -> list[int]:
    """`size` customers in the static segment "everyone" (inserted in bulk)."""
    return kit.bulk_customers(size, segment="everyone")


def run_everyone(flow, size: int) -> None:
    with at(NOW):
        assert start_flow_for_segment(flow=flow, segment_slug="everyone") == size
        tick(deliver=False)


# --- Splitter -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_50_50_splitter_over_10000_runs_holds_its_shares(db):
    audience(AUDIENCE)
    doc = splitter({"1": 50, "2": 50})
    with at(NOW):
        flow = kit.launch(doc)
    run_everyone(flow, AUDIENCE)
    observed = exits(flow, "split")
    assert sum(observed.values()) == AUDIENCE
    assert chi_square(observed, {"1": 50, "2": 50}) < CHI2_P001[1], observed
    # Unwired branches: every run ended there, completed.
    assert Run.objects.filter(flow=flow, status=Run.Status.COMPLETED).count() == AUDIENCE
    assert Counter(NodePass.objects.filter(node_key="split").values_list("port", flat=True)) == observed


@pytest.mark.django_db
def test_an_uneven_splitter_holds_its_shares(db):
    audience(3000)
    shares = {"small": 10, "large": 90}
    doc = splitter(shares)
    with at(NOW):
        flow = kit.launch(doc)
    run_everyone(flow, 3000)
    observed = exits(flow, "split")
    assert chi_square(observed, shares) < CHI2_P001[1], observed


@pytest.mark.django_db
def test_a_splitter_draws_afresh_on_every_pass():
    doc = splitter({"1": 50, "2": 50})
    flow, ann = kit.launch_at(NOW, doc, "ann")
    kit.post_and_tick(NOW, ann, times=40)
    assert {kit.path_of(run)[-1][1] for run in kit.runs_of(flow, ann)} == {"1", "2"}


# --- A/B test -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_ab_test_over_10000_customers_holds_its_shares(db):
    audience(AUDIENCE)
    with at(NOW):
        flow = kit.launch(ab_doc(wired=False))
    run_everyone(flow, AUDIENCE)
    observed = exits(flow, "ab")
    assert sum(observed.values()) == AUDIENCE
    assert chi_square(observed, {"A": 45, "B": 45, "control": 10}) < CHI2_P001[2], observed
    assert Counter(ABAssignment.objects.filter(flow=flow).values_list("variant", flat=True)) == observed


@pytest.mark.django_db
def test_the_control_variant_gets_no_interactions(db):
    from customers.models import Customer

    audience(1000)
    with at(NOW):
        flow = kit.launch(ab_doc())
    run_everyone(flow, 1000)
    observed = exits(flow, "ab")
    assert observed["control"] > 0
    stats = kit.stats_of(flow)
    assert stats[("step-A", "entered")] == observed["A"]
    assert stats[("step-B", "entered")] == observed["B"]
    # The control's runs end at the A/B node, although its port is wired.
    assert stats[("step-control", "entered")] == 0
    control_customers = set(
        ABAssignment.objects.filter(flow=flow, variant="control").values_list("customer_id", flat=True)
    )
    control_runs = Run.objects.filter(flow=flow, customer_id__in=control_customers)
    assert set(control_runs.values_list("status", "node_key", "launched")) == {
        (Run.Status.COMPLETED, "ab", False)
    }
    assert not NodePass.objects.filter(run__in=control_runs, node_key="step-control").exists()
    # Only the other variants' customers had something done to them.
    assert Customer.objects.filter(fields__got_A=True).count() == observed["A"]
    assert Customer.objects.filter(fields__got_B=True).count() == observed["B"]
    assert Customer.objects.filter(fields__got_control=True).count() == 0


@pytest.mark.django_db
def test_a_customer_keeps_the_variant_across_passes():
    flow, *ids = kit.launch_at(NOW, ab_doc(), *[f"c{index}" for index in range(30)])
    kit.post_and_tick(NOW, *ids, times=3)
    for customer_id in ids:
        ports = {kit.path_of(run)[1][1] for run in kit.runs_of(flow, customer_id)}
        assert len(ports) == 1, (customer_id, ports)
    assert ABAssignment.objects.filter(flow=flow).count() == 30
    assert len({kit.path_of(run)[1][1] for run in kit.runs_of(flow)}) > 1  # not everybody in one variant


@pytest.mark.django_db
def test_the_first_assignment_is_a_deterministic_draw(db):
    """Forgetting the stored assignments and drawing again gives the same
    variants: the draw depends on (flow, node, customer) only."""
    audience(500)
    with at(NOW):
        flow = kit.launch(ab_doc(wired=False))
    run_everyone(flow, 500)
    first = dict(ABAssignment.objects.filter(flow=flow).values_list("customer_id", "variant"))
    assert set(first.values()) == {"A", "B", "control"}
    ABAssignment.objects.filter(flow=flow).delete()
    run_everyone(flow, 500)
    assert dict(ABAssignment.objects.filter(flow=flow).values_list("customer_id", "variant")) == first


@pytest.mark.django_db
def test_a_new_version_keeps_the_variant_while_it_exists():
    flow, *ids = kit.launch_at(NOW, ab_doc(), *[f"c{index}" for index in range(60)])
    kit.post_and_tick(NOW, *ids)
    before = dict(ABAssignment.objects.filter(flow=flow).values_list("customer_id", "variant"))
    assert set(before.values()) == {"A", "B", "control"}

    # v2: same variants, other shares — everybody keeps theirs.
    reshared = [{"name": "A", "percent": 10}, {"name": "B", "percent": 10}, {**AB_VARIANTS[2], "percent": 80}]
    with at(NOW):
        flow = kit.relaunch(flow, ab_doc(reshared))
    kit.post_and_tick(NOW, *ids)
    assert dict(ABAssignment.objects.filter(flow=flow).values_list("customer_id", "variant")) == before
    for customer_id in ids:
        assert kit.path_of(kit.runs_of(flow, customer_id)[-1])[1][1] == before[customer_id]

    # v3 drops B: its customers are drawn again among v3's variants, the others stay.
    without_b = [{"name": "A", "percent": 50}, {"name": "C", "percent": 50}]
    with at(NOW):
        flow = kit.relaunch(flow, ab_doc(without_b))
    kit.post_and_tick(NOW, *ids)
    after = dict(ABAssignment.objects.filter(flow=flow).values_list("customer_id", "variant"))
    for customer_id in ids:
        if before[customer_id] == "A":
            assert after[customer_id] == "A"
        elif before[customer_id] == "B":
            assert after[customer_id] in ("A", "C")
        taken = kit.path_of(kit.runs_of(flow, customer_id)[-1])[1][1]
        assert taken == after[customer_id]
