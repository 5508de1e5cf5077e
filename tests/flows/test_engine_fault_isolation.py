"""Fault isolation (SPEC §12, issue #11): no input stops the engine.

Each test plants one input that used to halt every tick, past the validators
that refuse it today (written straight into the database, as data stored
before a bound existed would be), next to a healthy flow, and proves that:
the tick returns (flows_tick exits 0) and counts the error, the poison stops
alone with its reason and error text, and the healthy flow runs in the same
tick. The validators' own tests sit with them (test_validation_*.py,
test_durations.py, tests/customers/test_services_*.py)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import OperationalError, connection
from django.urls import reverse

import flows.engine.actions
import flows.engine.move
import flows.engine.tick
from channels.models import Message, Template
from customers.models import Customer, Event
from flows import lifecycle
from flows.engine.tick import tick
from flows.models import Flow, FlowVersion, Node, Run
from flows.selectors.activity import customer_runs, describe_runs
from flows.tasks import sweep_task
from maestra.audit.models import AuditEntry
from tests.flows import engine_kit as kit
from tests.flows.engine_kit import at, chain, document, event_start, node, send, steps

NOON = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)  # a Wednesday


@pytest.fixture(autouse=True)
def _templates(db, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    kit.email_templates("hello", "poison")


def healthy_flow(event_type: str = "order_created") -> Flow:
    """The bystander: event → send "hello"."""
    return kit.launch(
        document(
            [event_start(event_type), steps("greet", send("hello"))], chain("start", "greet"), name="Healthy"
        )
    )


def plant(flow: Flow, key: str, **config) -> None:
    """Write a node's config straight into the live version's graph (what the
    engine runs), past validation."""
    updated = Node.objects.filter(version_id=flow.live_version_id, key=key).update(config=config)
    assert updated == 1


def hello_sent_to(customer_id: int) -> bool:
    return Message.objects.filter(customer_id=customer_id, template_slug="hello").exists()


def assert_stopped_by_engine_error(run: Run, fragment: str) -> None:
    run.refresh_from_db()
    assert (run.status, run.stop_reason) == ("stopped", "engine_error")
    assert fragment in run.error, run.error
    assert run.due_at is None and run.ended_at is not None
    # Its stop is recorded like any other (activity, statistics).
    assert kit.path_of(run)[-1][2] == "engine_error"


def customer_and_order_for(*make_flows) -> tuple:
    """Customer ada, the flows made by `make_flows`, and an order of hers (not
    yet ticked): (ada, *the flows)."""
    ada = kit.customer("ada")
    flows = [make() for make in make_flows]
    kit.post_event(ada, occurred_at=NOON)
    return (ada, *flows)


def flows_tick() -> tuple[str, str]:
    """The operator's command: it must exit 0 (call_command raises otherwise)."""
    out, err = io.StringIO(), io.StringIO()
    call_command("flows_tick", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


# --- Launches ---------------------------------------------------------------------------


def schedule_document(recurrence: dict) -> dict:
    return document(
        [
            node(
                "start",
                "schedule",
                recurrence=recurrence,
                timezone="flow",
                audience={"segment": None, "rule": {"field": "customer.email", "op": "exists"}},
            ),
            steps("mail", send("poison")),
        ],
        chain("start", "mail"),
        name="Scheduled",
    )


@pytest.mark.parametrize(
    ("recurrence", "fragment"),
    [
        ({"every": "day", "interval": 2, "at": "10:00"}, "interval"),
        ({"every": "week", "interval": 53, "weekdays": ["mon"], "at": "10:00"}, "interval"),
        ({"cron": "0 10 31 2 *"}, "never fires"),
    ],
)
def test_a_launch_that_raises_goes_back_to_ready_and_the_others_launch_and_run(recurrence, fragment):
    with at(NOON):
        ada = kit.customer("ada")
        doomed = lifecycle.create_flow(document=schedule_document({"every": "day", "at": "10:00"}))
        lifecycle.launch_flow(flow=doomed, enqueue=False)
        # The draft's graph rows are what the engine arms the schedule from.
        Node.objects.filter(version=doomed.draft, key="start").update(
            config={**Node.objects.get(version=doomed.draft, key="start").config, "recurrence": recurrence}
        )
        other = lifecycle.create_flow(
            document=document([event_start(), steps("greet", send("hello"))], chain("start", "greet"))
        )
        lifecycle.launch_flow(flow=other, enqueue=False)
        kit.post_event(ada, occurred_at=NOON)

        out, _err = flows_tick()

    assert "launches.errors: 1" in out
    assert "launches_finished: 2" in out
    doomed.refresh_from_db()
    assert doomed.status == Flow.Status.READY  # where it was launched from, not stuck in launching
    assert doomed.live_version_id is None and doomed.draft.state == FlowVersion.State.DRAFT
    failure = AuditEntry.objects.about(doomed).latest("pk")
    assert failure.action == "flow.launch_failed"
    assert fragment in failure.data["error"]
    # The other flow launched and its customer got the message in the same tick.
    other.refresh_from_db()
    assert other.status == Flow.Status.ACTIVE
    assert hello_sent_to(ada)
    with at(NOON + timedelta(minutes=1)):
        assert flows_tick()[0] == "nothing due\n"  # the next tick does not trip over it again


def test_a_failed_launch_of_a_new_version_keeps_the_live_one_running():
    with at(NOON):
        ada = kit.customer("ada")
        flow = kit.launch(schedule_document({"every": "day", "at": "13:00"}))
        live = flow.live_version_id
        lifecycle.edit_flow(flow=flow)
        lifecycle.launch_flow(flow=flow, enqueue=False)
        Node.objects.filter(version=flow.draft, key="start").update(
            config={
                **Node.objects.get(version=flow.draft, key="start").config,
                "recurrence": {"cron": "0 0 30 2 *"},
            }
        )
        assert tick()["launches.errors"] == 1
    flow.refresh_from_db()
    assert (flow.status, flow.live_version_id) == (Flow.Status.ACTIVE, live)
    with at(NOON + timedelta(hours=1)):
        tick()  # 13:00: the live version fires as before
    assert Message.objects.filter(customer_id=ada, template_slug="poison").exists()


def test_a_schedule_that_cannot_fire_any_more_is_skipped_alone_with_the_reason():
    """A version launched before validation refused its recurrence."""
    with at(NOON):
        ada = kit.customer("ada")
        scheduled = kit.launch(schedule_document({"every": "day", "at": "13:00"}))
        healthy_flow()
        plant(
            scheduled,
            "start",
            **{**Node.objects.get(version_id=scheduled.live_version_id, key="start").config,
               "recurrence": {"every": "week", "interval": 53, "weekdays": ["wed"], "at": "13:00"}},
        )  # fmt: skip
    with at(NOON + timedelta(hours=1)):
        kit.post_event(ada, occurred_at=NOON + timedelta(hours=1))
        counts = tick()
    assert counts["schedules.errors"] == 1
    assert hello_sent_to(ada)  # the healthy flow ran in the same tick
    assert not Message.objects.filter(template_slug="poison").exists()
    entry = AuditEntry.objects.about(scheduled).latest("pk")
    assert entry.action == "flow.schedule_failed"
    assert "interval" in entry.data["error"]
    # Disarmed (no next fire can be computed): later ticks do not fail on it again.
    assert FlowVersion.objects.get(pk=scheduled.live_version_id).next_fire_at is None
    with at(NOON + timedelta(days=1, hours=1)):
        assert "schedules.errors" not in tick()


# --- Entry ------------------------------------------------------------------------------


def test_a_start_filter_that_overflows_stops_its_runs_and_the_other_flow_starts():
    with at(NOON):
        ada, bob = kit.customer("ada"), kit.customer("bob")
        filtered = kit.launch(
            document(
                [
                    event_start(filter={"field": "event.at", "op": "within_last", "value": "P7D"}),
                    steps("mail", send("poison")),
                ],
                chain("start", "mail"),
                name="Filtered",
            )
        )
        healthy_flow()
        plant(
            filtered,
            "start",
            event_type="order_created",
            filter={"field": "event.at", "op": "within_last", "value": "P99999999999D"},
        )
        for who in (ada, bob):
            kit.post_event(who, occurred_at=NOON, payload={"at": "2026-06-01"})

        counts = tick()

    assert counts["events.errors"] == 2
    for run in kit.runs_of(filtered):
        assert_stopped_by_engine_error(run, "100 years")
    assert hello_sent_to(ada) and hello_sent_to(bob)
    assert not Message.objects.filter(template_slug="poison").exists()
    assert not Event.objects.filter(processed_at__isnull=True).exists()  # never matched again
    assert kit.stats_of(filtered)[("start", "stop:engine_error")] == 2


# --- Runs -------------------------------------------------------------------------------


def capped_flow() -> Flow:
    """event → limitation (planted: every 10**30 hours) → send "poison"."""
    flow = kit.launch(
        document(
            [
                event_start(),
                node("cap", "limitation", max=10, period={"unit": "hours", "every": 1}),
                steps("mail", send("poison")),
            ],
            [*chain("start", "cap"), {"from": "cap", "to": "mail", "port": "within"}],
            name="Capped",
        )
    )
    plant(flow, "cap", max=10, period={"unit": "hours", "every": 10**30})
    return flow


def test_a_run_that_raises_stops_alone_and_the_rest_of_its_batch_runs():
    with at(NOON):
        customers = [kit.customer(f"c{index}") for index in range(12)]
        capped = capped_flow()
        healthy_flow()
        for who in customers:
            kit.post_event(who, occurred_at=NOON)

        out, err = flows_tick()

    assert "runs.errors: 12" in out
    assert "error(s) isolated" in err
    runs = kit.runs_of(capped)
    assert len(runs) == 12
    for run in runs:
        assert_stopped_by_engine_error(run, "OverflowError")
        assert "at node 'cap' (limitation)" in run.error
    assert all(hello_sent_to(who) for who in customers)
    assert not Message.objects.filter(template_slug="poison").exists()


def test_a_poison_run_first_in_the_claim_order_does_not_block_the_others(settings):
    settings.MAESTRA_BATCH_SIZE = 4
    with at(NOON):
        customers = [kit.customer(f"c{index}") for index in range(9)]
        capped = capped_flow()
        healthy_flow()
        # The poison is due first (the oldest event), then the healthy runs.
        kit.post_event(customers[0], occurred_at=NOON - timedelta(hours=1))
        for who in customers:
            kit.post_event(who, occurred_at=NOON)
        counts = tick()
    [poison] = kit.runs_of(capped, customers[0])[:1]
    assert_stopped_by_engine_error(poison, "OverflowError")
    assert counts["runs.errors"] == len(kit.runs_of(capped)) == 10
    assert all(hello_sent_to(who) for who in customers)
    assert not Run.objects.filter(status__in=("active", "waiting")).exists()


def test_isolating_a_poison_run_repeats_nothing_of_the_runs_processed_with_it():
    """The batch that raised is rolled back and its parts processed again
    from the committed rows: each healthy run passes each node once."""
    with at(NOON):
        customers = [kit.customer(f"c{index}") for index in range(5)]
        capped_flow()
        healthy = healthy_flow()
        for who in customers:
            kit.post_event(who, occurred_at=NOON)
        tick(deliver=False)
    assert Message.objects.filter(template_slug="hello").count() == 5
    assert kit.stats_of(healthy)[("greet", "entered")] == 5
    assert kit.stats_of(healthy)[("greet", "exit:next")] == 5
    for run in kit.runs_of(healthy):
        assert kit.path_of(run) == [("start", "next", ""), ("greet", "next", "")]


def generous_flow(amount: int = 100) -> Flow:
    return kit.launch(
        document(
            [event_start(), steps("give", {"action": "points", "amount": amount})],
            chain("start", "give"),
            name="Generous",
        )
    )


def test_a_points_amount_beyond_the_ledger_stops_its_run_and_the_other_flow_runs():
    """10**30 was "bigint out of range" on PostgreSQL in every tick; the
    ledger's own check (the one the step is validated with) refuses it now."""
    with at(NOON):
        ada = kit.customer("ada")
        generous = generous_flow()
        healthy_flow()
        plant(generous, "give", relevance="P1D", steps=[{"action": "points", "amount": 10**30}])
        kit.post_event(ada, occurred_at=NOON)
        tick()
    [run] = kit.runs_of(generous)
    run.refresh_from_db()
    assert (run.status, run.stop_reason) == ("stopped", "invalid_step")
    assert hello_sent_to(ada)
    assert not Customer.objects.get(pk=ada).points_entries.exists()


def test_a_database_error_of_one_run_is_isolated_too(monkeypatch):
    """An error the database raises (on PostgreSQL it aborts the whole
    transaction) for one customer's row: the batch is rolled back and split,
    the others' points are granted once."""
    grant = flows.engine.actions.grant_points
    with at(NOON):
        customers_ = [kit.customer(f"c{index}") for index in range(6)]
        poison = customers_[3]

        def failing_grant(*, entries):
            if any(entry["customer_id"] == poison for entry in entries):
                with connection.cursor() as cursor:
                    cursor.execute("SELECT CAST('not a number' AS integer) + 1/0")
            return grant(entries=entries)

        # The points action calls the ledger through this name.
        monkeypatch.setattr(flows.engine.actions, "grant_points", failing_grant)
        generous = generous_flow()
        healthy_flow()
        for who in customers_:
            kit.post_event(who, occurred_at=NOON)
        counts = tick()
    if connection.vendor == "sqlite":
        # SQLite computes that without complaint: nothing to isolate.
        assert "runs.errors" not in counts
        return
    assert counts["runs.errors"] == 1
    [stopped] = kit.runs_of(generous, poison)
    assert_stopped_by_engine_error(stopped, "at node 'give' (steps)")
    for who in customers_:
        expected = 0 if who == poison else 100
        assert sum(Customer.objects.get(pk=who).points_entries.values_list("amount", flat=True)) == expected
        assert hello_sent_to(who)


def deep(levels: int) -> dict:
    value: dict = {"leaf": "x"}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize("where", ["payload", "fields"])
def test_data_nested_500_levels_stops_its_run_alone_and_the_other_flow_runs(where):
    """Stored before the 32-level bound (or by a path that skipped it)."""
    with at(NOON):
        ada, bob = kit.customer("ada"), kit.customer("bob")
        renders = kit.launch(
            document(
                [event_start("deep"), steps("mail", send("poison"))],
                chain("start", "mail"),
                name="Renders the data",
            )
        )
        Template.objects.filter(slug="poison").update(
            text="{{ event }} {{ customer.fields }}", subject="For {{ customer.first_name }}"
        )
        healthy_flow()
        event_id = kit.post_event(ada, "deep", occurred_at=NOON)
        if where == "payload":
            Event.objects.filter(pk=event_id).update(payload=deep(500))
        else:
            Customer.objects.filter(pk=ada).update(fields=deep(500))
        kit.post_event(bob, occurred_at=NOON)
        counts = tick()
    [run] = kit.runs_of(renders)
    run.refresh_from_db()
    # The render fails alone: as a failed step (channels' render_error) or,
    # when it raises something else, as an engine error; either way the tick
    # goes on and the other customer gets their message.
    assert run.status == "stopped"
    assert run.stop_reason in ("engine_error", "template_error", "render_error"), run.stop_reason
    if run.stop_reason == "engine_error":
        assert counts["runs.errors"] == 1
    assert hello_sent_to(bob)


# --- Shown to people -----------------------------------------------------------------------


def test_the_error_is_kept_on_the_run_for_the_activity():
    with at(NOON):
        ada = customer_and_order_for(capped_flow)[0]
        tick()
    [described] = describe_runs(runs=list(customer_runs(customer_id=ada)))
    assert described["stop_reason"] == "engine_error"
    assert "OverflowError" in described["error"]


def test_the_monitoring_page_and_the_activity_show_the_error(admin_client):
    with at(NOON):
        ada, capped = customer_and_order_for(capped_flow)
        tick()
    [run] = kit.runs_of(capped)
    run.refresh_from_db()
    with at(NOON + timedelta(hours=1)):
        page = admin_client.get(reverse("admin:flows_monitoring"), {"show": "steps"}).content.decode()
        filtered = admin_client.get(
            reverse("admin:flows_monitoring"), {"show": "steps", "reason": "engine_error"}
        ).content.decode()
    for html in (page, filtered):
        assert "Failed steps (1)" in html
        assert "engine_error" in html
        assert "OverflowError" in html and "at node &#x27;cap&#x27; (limitation)" in html
    activity = admin_client.get(reverse("admin:flows_customer_activity", args=[ada])).content.decode()
    # The reason in words, its code as the tooltip (flows/plain_language.py).
    assert 'stopped: <span class="stop-reason" title="engine_error">' in activity
    assert "The engine could not process this run" in activity and "OverflowError" in activity


def test_flows_tick_prints_the_error_counts_and_exits_zero():
    with at(NOON):
        customer_and_order_for(capped_flow)
        out, err = flows_tick()
    assert "runs.errors: 1" in out
    assert err.strip() == "1 error(s) isolated; see the monitoring page and the audit log"


def test_the_periodic_sweep_goes_on_and_returns_the_error_counts():
    with at(NOON):
        ada = customer_and_order_for(capped_flow, healthy_flow)[0]
        counts = sweep_task()
    assert counts["runs.errors"] == 1
    assert hello_sent_to(ada)


def test_a_tick_step_that_raises_anyway_is_counted_and_the_other_steps_run(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug in one step")

    monkeypatch.setattr(flows.engine.tick, "fire_schedules", broken)
    with at(NOON):
        ada = customer_and_order_for(healthy_flow)[0]
        out, _err = flows_tick()
    assert "errors.schedules: 1" in out
    assert hello_sent_to(ada)


def test_an_error_of_the_system_stops_the_tick_with_the_reason(monkeypatch):
    """No run is to blame when the database is gone: nothing is stopped, the
    command fails (exit code 1 from manage.py) and says why."""

    def gone(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(flows.engine.move, "move_batch", gone)
    with at(NOON):
        ada, healthy = customer_and_order_for(healthy_flow)
        with pytest.raises(OperationalError, match="server closed"):
            flows_tick()
        # Rolled back and left for the next tick, not stopped: the run moves
        # in the transaction that matches its event, so the event waits too.
        assert kit.runs_of(healthy) == []
        assert Event.objects.filter(customer=ada, processed_at__isnull=True).exists()
        monkeypatch.undo()
        flows_tick()
    assert [(run.status, run.stop_reason) for run in kit.runs_of(healthy)] == [("completed", "")]
    assert hello_sent_to(ada)
