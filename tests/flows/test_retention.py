"""prune_activity: node passes of runs ended long ago and old message contents
go; statistics, runs and message rows stay."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django_q.models import Schedule

from channels.models import Message
from customers.models import Customer
from flows.engine.tick import tick
from flows.models import NodePass, NodeStat, Run
from flows.retention import prune_activity, prune_task
from tests.flows import engine_kit as kit

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def history(templates, spec_document, settings):
    """Ann's run ended in January; Bob's run (April) is recent; Cid's is still waiting."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    kit.launch(spec_document)

    def register(external_id, at):
        with time_machine.travel(at, tick=False):
            kit.customer(external_id, subscriptions={"email": "requires_confirmation"})
            tick()
        with time_machine.travel(at + timedelta(days=1, minutes=1), tick=False):
            tick()
        return Customer.objects.get(external_id=external_id)

    ann = register("ann", START)
    bob = register("bob", START + timedelta(days=90))
    with time_machine.travel(START + timedelta(days=100), tick=False):
        kit.customer("cid", subscriptions={"email": "requires_confirmation"})
        tick()
    return ann, bob, Customer.objects.get(external_id="cid")


@pytest.mark.django_db
def test_it_prunes_only_old_detail_of_ended_runs_and_keeps_statistics(history):
    ann, bob, cid = history
    assert Run.objects.get(customer=ann).status == "completed"
    assert Run.objects.get(customer=cid).status == "waiting"
    stats = list(NodeStat.objects.order_by("id").values_list("id", "count"))
    bob_passes = NodePass.objects.filter(run__customer=bob).count()
    cid_passes = NodePass.objects.filter(run__customer=cid).count()
    assert NodePass.objects.filter(run__customer=ann).exists() and bob_passes and cid_passes

    now = START + timedelta(days=100, hours=1)
    counts = prune_activity(older_than="P30D", now=now, chunk=2)  # small chunks: the loop is exercised
    assert counts["node_passes"] == 5
    assert not NodePass.objects.filter(run__customer=ann).exists()
    assert NodePass.objects.filter(run__customer=bob).count() == bob_passes
    assert NodePass.objects.filter(run__customer=cid).count() == cid_passes
    # Ann's messages keep their status, lose their contents; Bob's are untouched.
    ann_messages = list(Message.objects.filter(customer=ann).values_list("status", "rendered"))
    assert ann_messages and all(status == "sent" and rendered == {} for status, rendered in ann_messages)
    assert all(Message.objects.filter(customer=bob).values_list("rendered", flat=True))
    assert list(NodeStat.objects.order_by("id").values_list("id", "count")) == stats
    assert Run.objects.filter(customer=ann).exists()

    # Running again finds nothing more.
    assert prune_activity(older_than="P30D", now=now) == {"node_passes": 0, "messages": 0}


@pytest.mark.django_db
@pytest.mark.parametrize("older_than", ["P29D", "-P60D", "soon", "PT1H", ""])
def test_it_refuses_short_or_bad_durations(older_than):
    with pytest.raises(ValueError):
        prune_activity(older_than=older_than)
    with pytest.raises(CommandError):
        call_command("prune_activity", "--older-than", older_than)


@pytest.mark.django_db
def test_the_command_and_the_daily_task(history, settings):
    ann, _bob, _cid = history
    settings.MAESTRA_ACTIVITY_RETENTION = "P60D"
    with time_machine.travel(START + timedelta(days=100), tick=False):
        assert prune_task()["node_passes"] == 5
        out = StringIO()
        call_command("prune_activity", "--older-than", "P30D", stdout=out)
    assert out.getvalue().startswith("Deleted 0 node passes")


@pytest.mark.django_db(transaction=True)
def test_migrate_registers_the_daily_prune_task_once():
    call_command("migrate", verbosity=0)
    call_command("migrate", verbosity=0)
    assert list(
        Schedule.objects.filter(name="maestra-prune-activity").values_list("func", "schedule_type", "minutes")
    ) == [("flows.retention.prune_task", Schedule.MINUTES, 24 * 60)]
