# Keys made before scopes lived in djangorestframework-api-key's own table.
# They move here with every scope, so current integrations keep working
# unchanged; only their hash moves (the keys themselves were never stored).

from django.db import migrations

# Frozen here (not imported from app code) so the migration means the same thing forever.
ALL_SCOPES = [
    "events:write",
    "customers:read",
    "customers:write",
    "flows:read",
    "flows:write",
    "content:write",
    "privacy",
]
FIELDS = ("id", "prefix", "hashed_key", "name", "revoked", "expiry_date")


def move_keys(apps, schema_editor):
    Old = apps.get_model("rest_framework_api_key", "APIKey")
    New = apps.get_model("api", "ApiKey")
    for old in Old.objects.order_by("created"):
        if New.objects.filter(prefix=old.prefix).exists():
            continue
        New.objects.create(**{field: getattr(old, field) for field in FIELDS}, scopes=ALL_SCOPES)
        # `created` is auto_now_add: set after the insert, or every key would be "created" today.
        New.objects.filter(pk=old.pk).update(created=old.created)
    Old.objects.all().delete()


def move_keys_back(apps, schema_editor):
    Old = apps.get_model("rest_framework_api_key", "APIKey")
    New = apps.get_model("api", "ApiKey")
    for new in New.objects.order_by("created"):
        if Old.objects.filter(prefix=new.prefix).exists():
            continue
        Old.objects.create(**{field: getattr(new, field) for field in FIELDS})
        Old.objects.filter(pk=new.pk).update(created=new.created)
    New.objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("api", "0001_api_keys_with_scopes"),
        ("rest_framework_api_key", "0005_auto_20220110_1102"),
    ]

    operations = [
        migrations.RunPython(move_keys, move_keys_back),
    ]
