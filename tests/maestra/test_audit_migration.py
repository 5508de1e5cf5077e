"""flows/0007_move_audit_entries: the flow-only audit log moves to the
kernel's audit app with its ids, and comes back when migrated backwards."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from customers.models import Customer, PromoPool
from flows.models import Flow
from maestra.audit import log as audit
from maestra.audit.models import AuditEntry

BEFORE = [("flows", "0006_run_engine_error")]
AT = datetime(2025, 6, 1, 10, 0, tzinfo=UTC)


def migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()  # the applied set changed
    return executor


def latest():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_the_entries_move_to_the_audit_app_and_back(django_user_model):
    user = django_user_model.objects.create_user("ann")
    executor = migrate(BEFORE)
    old_apps = executor.loader.project_state(BEFORE).apps
    OldEntry = old_apps.get_model("flows", "AuditEntry")
    flow = old_apps.get_model("flows", "Flow").objects.create(name="Welcome")
    customer = old_apps.get_model("customers", "Customer").objects.create(external_id="erased-9")
    pool = old_apps.get_model("customers", "PromoPool").objects.create(slug="welcome", name="Welcome")
    OldEntry.objects.create(
        id=40, action="flow.launched", flow_id=flow.pk, user_id=user.pk, at=AT, data={"v": 1}
    )
    OldEntry.objects.create(id=41, action="customer.erased", at=AT, data={"customer_id": customer.pk})
    OldEntry.objects.create(
        id=45, action="alert.promo_pool_low", at=AT, data={"pool": "welcome", "free": 3, "alert_below": 10}
    )

    migrate(latest())

    moved = list(AuditEntry.objects.order_by("id"))
    assert [entry.id for entry in moved] == [40, 41, 45]
    launched, erased, alert = moved
    assert launched.subject == Flow.objects.get(pk=flow.pk) and launched.user_id == user.pk
    assert (launched.action, launched.at, launched.data) == ("flow.launched", AT, {"v": 1})
    assert launched.subject_repr == f"flow #{flow.pk}"
    assert erased.subject == Customer.objects.get(pk=customer.pk) and erased.data == {
        "customer_id": customer.pk
    }
    assert alert.subject == PromoPool.objects.get(pk=pool.pk) and alert.data["pool"] == "welcome"
    # The flow's history is found through the flow, as before.
    assert list(Flow.objects.get(pk=flow.pk).audit_entries.values_list("id", flat=True)) == [40]
    # The next entry takes a fresh id after the moved ones.
    assert audit.log("flow.paused").id > 45

    executor = migrate(BEFORE)
    back = executor.loader.project_state(BEFORE).apps.get_model("flows", "AuditEntry")
    assert list(back.objects.order_by("id").values_list("id", "action", "flow_id")) == [
        (40, "flow.launched", flow.pk),
        (41, "customer.erased", None),
        (45, "alert.promo_pool_low", None),
    ]
    migrate(latest())
    assert list(AuditEntry.objects.order_by("id").values_list("id", flat=True))[:3] == [40, 41, 45]
