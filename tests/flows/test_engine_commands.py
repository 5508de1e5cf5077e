"""The operator's commands (`flows_tick`, `run_flow`) and the guards that make
a tick terminate: event chains stop at MAESTRA_MAX_EVENT_DEPTH, and one tick
caps the passes of a run (MAESTRA_MAX_PASSES_PER_TICK)."""

import io
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import CommandError, call_command

from channels.models import Message
from customers.models import Event
from customers.services import store_events
from flows import lifecycle
from flows.engine.entry import start_flow_for_segment
from flows.engine.tick import tick
from flows.models import Flow, Run
from tests.flows import engine_builders as builders
from tests.flows.engine_builders import document, email_template, event_start, make_customers
from tests.flows.engine_kit import edge, launch, node, send, static_segment, steps

NOON = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)  # a Wednesday


class TTYBuffer(io.StringIO):
    """Where a progress bar is drawn (tqdm draws to any stream it is given)."""

    def isatty(self) -> bool:
        return True


def run_command(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), TTYBuffer()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def hello(db, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    return email_template("hello")


def hello_flow(**doc):
    return launch(
        document(
            [
                event_start("never"),
                steps("hello", send("hello")),
                node("later", "wait", mode="fixed", duration="P1D"),
            ],
            [edge("start", "hello"), edge("hello", "later")],
            **doc,
        )
    )


def hello_flow_with_events(count: int) -> None:
    """The hello flow live, and `count` customers with a `never` event each at NOON."""
    hello_flow()
    ids = make_customers(count)
    store_events(events=[{"customer_id": i, "type": "never", "occurred_at": NOON} for i in ids])


# --- flows_tick ----------------------------------------------------------------


def test_flows_tick_says_nothing_due_when_there_is_nothing(db):
    out, _ = run_command("flows_tick")
    assert out.strip() == "nothing due"


def test_flows_tick_prints_what_it_did(hello):
    with time_machine.travel(NOON, tick=False):
        hello_flow_with_events(3)
        out, _ = run_command("flows_tick")
    counts = builders.parse_counts(out)
    assert counts["events.events"] == 3
    assert counts["events.runs_started"] == 3
    assert counts["runs.runs"] == 3
    assert counts["runs.waiting"] == 3
    assert counts["messages.sent"] == 3
    # key: value lines, sorted, nothing else.
    assert out.splitlines() == sorted(out.splitlines())
    assert all(": " in line for line in out.splitlines())

    with time_machine.travel(NOON + timedelta(hours=1), tick=False):
        out, _ = run_command("flows_tick")
    assert out.strip() == "nothing due"


def test_flows_tick_no_deliver_leaves_the_outbox(hello):
    with time_machine.travel(NOON, tick=False):
        hello_flow_with_events(2)
        out, _ = run_command("flows_tick", "--no-deliver")
    assert not any(line.startswith("messages.") for line in out.splitlines())
    assert set(Message.objects.values_list("status", flat=True)) == {Message.Status.QUEUED}


# --- run_flow ------------------------------------------------------------------


def test_run_flow_runs_the_segment_now_with_a_progress_bar(hello):
    with time_machine.travel(NOON, tick=False):
        flow = hello_flow()
        static_segment("vip", make_customers(7))
        out, err = run_command("run_flow", str(flow.pk), "--segment", "vip")
    assert out.splitlines() == ["runs started: 7", "completed: 0, stopped: 0, waiting: 7"]
    assert "7/7" in err  # the bar, at its end
    assert Run.objects.filter(flow=flow, status=Run.Status.WAITING, node_key="later").count() == 7
    assert Message.objects.filter(flow_id=flow.pk).count() == 7


def test_run_flow_moves_only_its_own_flows_runs(hello):
    with time_machine.travel(NOON, tick=False):
        flow = hello_flow()
        other = hello_flow(name="Other")
        static_segment("vip", make_customers(2))
        (bob,) = make_customers(1, prefix="x")
        store_events(events=[{"customer_id": bob, "type": "never", "occurred_at": NOON}])
        start_flow_for_segment(flow=other, segment_slug="vip")
        run_command("run_flow", str(flow.pk), "--segment", "vip", "--no-progress")
    assert Run.objects.filter(flow=other, node_key="start", status=Run.Status.ACTIVE).count() == 2
    assert Event.objects.filter(processed_at__isnull=True).count() == 1  # left to flows_tick


@pytest.mark.parametrize(
    ("flow_arg", "segment", "message"),
    [
        ("999999", "vip", "no flow with id '999999'"),
        ("abc", "vip", "no flow with id 'abc'"),
        (None, "nope", "no segment with slug 'nope'"),
    ],
)
def test_run_flow_refuses_unknown_flows_and_segments(hello, flow_arg, segment, message):
    flow = hello_flow()
    static_segment("vip", make_customers(2))
    with pytest.raises(CommandError) as refused:
        run_command("run_flow", flow_arg or str(flow.pk), "--segment", segment)
    assert str(refused.value) == message
    assert not Run.objects.exists()


@pytest.mark.parametrize("status", [Flow.Status.READY, Flow.Status.PAUSED, Flow.Status.ARCHIVED])
def test_run_flow_refuses_a_flow_that_is_not_active(hello, status):
    flow = lifecycle.create_flow(
        document=document([event_start("never"), steps("hello", send("hello"))], [edge("start", "hello")])
    )
    if status != Flow.Status.READY:
        lifecycle.launch_flow(flow=flow, enqueue=False)
        flow = lifecycle.finish_launch(flow_id=flow.pk)
        flow = (
            lifecycle.pause_flow(flow=flow)
            if status == Flow.Status.PAUSED
            else lifecycle.archive_flow(flow=flow)
        )
    static_segment("vip", make_customers(2))
    with pytest.raises(CommandError) as refused:
        run_command("run_flow", str(flow.pk), "--segment", "vip")
    assert str(refused.value) == f"flow {flow.pk} is {status}: only an active or testing flow can run"
    assert not Run.objects.exists()


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_run_flow_exits_non_zero_with_a_one_line_reason():
    """Through a real process: exit status and stderr as an operator sees them."""
    email_template("hello")
    flow = hello_flow()
    static_segment("vip", make_customers(3))
    env = builders.worker_env()

    refused = builders.manage("run_flow", "424242", "--segment", "vip", env=env)
    _, err = refused.communicate(timeout=60)
    assert refused.returncode != 0
    assert err.strip().splitlines() == ["CommandError: no flow with id '424242'"]

    missing = builders.manage("run_flow", str(flow.pk), "--segment", "nope", env=env)
    _, err = missing.communicate(timeout=60)
    assert missing.returncode != 0
    assert err.strip().splitlines() == ["CommandError: no segment with slug 'nope'"]

    ok = builders.manage("run_flow", str(flow.pk), "--segment", "vip", env=env)
    out, err = ok.communicate(timeout=60)
    assert ok.returncode == 0, err
    assert out.splitlines() == ["runs started: 3", "completed: 0, stopped: 0, waiting: 3"]


# --- Loops terminate -------------------------------------------------------------


def test_an_event_chain_between_two_flows_stops_at_the_maximum_depth(hello, settings):
    settings.MAESTRA_MAX_EVENT_DEPTH = 3
    with time_machine.travel(NOON, tick=False):
        for name, listens, emits in (("Ping", "ping", "pong"), ("Pong", "pong", "ping")):
            launch(
                document(
                    [
                        event_start(listens),
                        steps("tell", {"action": "emit_event", "event_type": emits, "payload": {}}),
                    ],
                    [edge("start", "tell")],
                    name=name,
                )
            )
        (ann,) = make_customers(1)
        store_events(events=[{"customer_id": ann, "type": "ping", "occurred_at": NOON}])
        counts = tick()
        assert tick() == {}  # the chain is over: nothing left for the next tick
    # ping(0) → pong(1) → ping(2) → pong(3); the ping of depth 4 is dropped.
    assert list(Event.objects.order_by("id").values_list("type", "depth")) == [
        ("ping", 0),
        ("pong", 1),
        ("ping", 2),
        ("pong", 3),
    ]
    assert Run.objects.filter(status=Run.Status.COMPLETED).count() == 4
    assert counts["events.runs_started"] == 4


def test_an_event_chain_longer_than_a_tick_goes_on_at_the_next_tick(hello, settings):
    from flows.engine.tick import MAX_ROUNDS

    settings.MAESTRA_MAX_EVENT_DEPTH = MAX_ROUNDS + 5
    with time_machine.travel(NOON, tick=False):
        launch(
            document(
                [
                    event_start("echo"),
                    steps("tell", {"action": "emit_event", "event_type": "echo", "payload": {}}),
                ],
                [edge("start", "tell")],
            )
        )
        (ann,) = make_customers(1)
        store_events(events=[{"customer_id": ann, "type": "echo", "occurred_at": NOON}])
        first = tick()
        second = tick()
        third = tick()
    assert first["events.runs_started"] == MAX_ROUNDS
    # The rest: depths MAX_ROUNDS … MAX_ROUNDS + 5; the one deeper is dropped.
    assert second["events.runs_started"] == 6
    assert third == {}
    assert Event.objects.count() == MAX_ROUNDS + 6  # depths 0 … MAX_ROUNDS + 5


def test_one_tick_caps_the_passes_of_a_looping_run(hello, settings):
    """steps → a wait whose window is always open → back to the steps: a loop
    that never waits. Each tick makes at most MAESTRA_MAX_PASSES_PER_TICK moves
    (one message every two) and ends; the run goes on at the next tick."""
    settings.MAESTRA_MAX_PASSES_PER_TICK = 10
    always = {
        "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "from": "00:00",
        "to": "23:59",
        "timezone": "flow",
    }
    with time_machine.travel(NOON, tick=False):
        flow = launch(
            document(
                [
                    event_start("never"),
                    steps("hello", send("hello")),
                    node("again", "wait", mode="window", window=always),
                ],
                [edge("start", "hello"), edge("hello", "again"), edge("again", "hello")],
            )
        )
        static_segment("one", make_customers(1))
        out, _ = run_command("run_flow", str(flow.pk), "--segment", "one", "--no-progress")
        assert out.splitlines()[-1] == "completed: 0, stopped: 0, waiting: 0, still due: 1"
    assert Message.objects.count() == 5

    with time_machine.travel(NOON + timedelta(minutes=1), tick=False):
        counts = tick()
    assert counts["runs.moved"] == 10
    assert Message.objects.count() == 10
    run = Run.objects.get(flow=flow)
    assert run.status == Run.Status.ACTIVE
    assert run.seq == 20


def test_one_tick_matches_more_events_than_fit_in_a_batch(hello, settings):
    settings.MAESTRA_BATCH_SIZE = 10
    with time_machine.travel(NOON, tick=False):
        hello_flow_with_events(25)
        counts = tick()
    assert counts["events.events"] == 25
    # Each batch's runs move on in the transaction that matched their events.
    assert counts["runs.runs"] == 25
    assert "runs.batches" not in counts
    assert not Event.objects.filter(processed_at__isnull=True).exists()
