# The audit log moves from flows to the kernel's audit app (maestra/audit):
# every entry is copied with its id, action, time, user and data; its subject
# is the flow it named, the erased customer (customer.erased) or the promo
# pool of a pool alert that named no flow. The Marketer group reads the new
# log as it read the old one. The next migration deletes the old table.

from django.contrib.auth.management import create_permissions
from django.core.management.color import no_style
from django.db import migrations
from django.db.models import Q

CHUNK = 2000
MARKETER_GROUP = "Marketer"
ERASED = "customer.erased"
POOL_ALERT = "alert.promo_pool_low"


def _content_type(apps, app_label, model):
    ContentType = apps.get_model("contenttypes", "ContentType")
    return ContentType.objects.get_or_create(app_label=app_label, model=model)[0]


def _chunks(queryset):
    chunk = []
    for row in queryset.iterator(chunk_size=CHUNK):
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _permission(apps, app_label, model, codename):
    # Permissions are normally created after all migrations ran (post_migrate);
    # on a fresh database they do not exist yet at this point.
    app_config = apps.get_app_config(app_label)
    original = getattr(app_config, "models_module", None)
    app_config.models_module = original or True  # create_permissions skips an app without one
    try:
        create_permissions(app_config, verbosity=0, apps=apps)
    finally:
        app_config.models_module = original
    Permission = apps.get_model("auth", "Permission")
    return Permission.objects.get(content_type__app_label=app_label, content_type__model=model, codename=codename)


def _move_view_permission(apps, *, to_app, from_app):
    """The Marketer group reads the audit log of `to_app` instead of `from_app`'s."""
    group = apps.get_model("auth", "Group").objects.filter(name=MARKETER_GROUP).first()
    if group is None:
        return
    group.permissions.add(_permission(apps, to_app, "auditentry", "view_auditentry"))
    group.permissions.remove(
        *apps.get_model("auth", "Permission").objects.filter(
            content_type__app_label=from_app, codename="view_auditentry"
        )
    )


def grant_audit_view(apps, schema_editor):
    """The Marketer group (flows/0003_marketer_group) reads the new log
    instead of the old one."""
    _move_view_permission(apps, to_app="audit", from_app="flows")


def revoke_audit_view(apps, schema_editor):
    _move_view_permission(apps, to_app="flows", from_app="audit")


def _reset_sequence(apps, schema_editor, model_name):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return  # SQLite takes the next id after the largest one by itself
    model = apps.get_model(*model_name.split("."))
    with connection.cursor() as cursor:
        for statement in connection.ops.sequence_reset_sql(no_style(), [model]):
            cursor.execute(statement)


def move_entries(apps, schema_editor):
    Old = apps.get_model("flows", "AuditEntry")
    New = apps.get_model("audit", "AuditEntry")
    PromoPool = apps.get_model("customers", "PromoPool")
    flow_type = _content_type(apps, "flows", "flow")
    customer_type = _content_type(apps, "customers", "customer")
    pool_type = _content_type(apps, "customers", "promopool")
    rows = Old.objects.order_by("id").values("id", "action", "at", "user_id", "flow_id", "data")
    for chunk in _chunks(rows):
        slugs = {
            row["data"].get("pool")
            for row in chunk
            if row["action"] == POOL_ALERT and row["flow_id"] is None and isinstance(row["data"], dict)
        }
        pools = dict(PromoPool.objects.filter(slug__in=slugs - {None}).values_list("slug", "id"))
        entries = []
        for row in chunk:
            data = row["data"] if isinstance(row["data"], dict) else {}
            subject = (None, None, "")
            if row["flow_id"] is not None:
                subject = (flow_type, row["flow_id"], f"flow #{row['flow_id']}")
            elif row["action"] == ERASED and isinstance(data.get("customer_id"), int):
                subject = (customer_type, data["customer_id"], f"customer #{data['customer_id']}")
            elif row["action"] == POOL_ALERT and data.get("pool") in pools:
                subject = (pool_type, pools[data["pool"]], f"promo pool #{pools[data['pool']]}")
            entries.append(
                New(
                    id=row["id"],
                    action=row["action"],
                    at=row["at"],
                    user_id=row["user_id"],
                    subject_type=subject[0],
                    subject_id=subject[1],
                    subject_repr=subject[2],
                    data=row["data"],
                )
            )
        New.objects.bulk_create(entries, batch_size=CHUNK)
    _reset_sequence(apps, schema_editor, "audit.AuditEntry")
    grant_audit_view(apps, schema_editor)


def move_entries_back(apps, schema_editor):
    """The entries the old table could hold (a flow's, erasures, alerts) go
    back with their ids; entries only the new log knows stay there."""
    Old = apps.get_model("flows", "AuditEntry")
    New = apps.get_model("audit", "AuditEntry")
    flow_type = _content_type(apps, "flows", "flow")
    Flow = apps.get_model("flows", "Flow")
    rows = (
        New.objects.filter(Q(subject_type=flow_type) | Q(action=ERASED) | Q(action__startswith="alert."))
        .order_by("id")
        .values("id", "action", "at", "user_id", "subject_type_id", "subject_id", "data")
    )
    moved = []
    for chunk in _chunks(rows):
        flow_ids = {row["subject_id"] for row in chunk if row["subject_type_id"] == flow_type.pk}
        existing = set(Flow.objects.filter(id__in=flow_ids).values_list("id", flat=True))
        Old.objects.bulk_create(
            [
                Old(
                    id=row["id"],
                    action=row["action"],
                    at=row["at"],
                    user_id=row["user_id"],
                    flow_id=row["subject_id"]
                    if row["subject_type_id"] == flow_type.pk and row["subject_id"] in existing
                    else None,
                    data=row["data"],
                )
                for row in chunk
            ],
            batch_size=CHUNK,
        )
        moved += [row["id"] for row in chunk]
    for start in range(0, len(moved), CHUNK):
        New.objects.filter(id__in=moved[start : start + CHUNK]).delete()
    _reset_sequence(apps, schema_editor, "flows.AuditEntry")
    revoke_audit_view(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("customers", "0003_customer_privacy_permissions"),
        ("audit", "0001_initial"),
        ("flows", "0006_run_engine_error"),
    ]

    operations = [
        migrations.RunPython(move_entries, move_entries_back),
    ]
