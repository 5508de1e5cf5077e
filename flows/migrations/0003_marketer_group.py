# The "Marketer" group (issue 6): flows, templates, segments, promo pools,
# customers read-only, statistics. Deliberately no API keys, users, groups or
# django-q settings: those stay with superusers.

from django.db import migrations

MARKETER_GROUP = "Marketer"

ALL = ("add", "change", "delete", "view")
READ = ("view",)

# app label -> model -> actions. Frozen here (not imported from app code) so
# the migration means the same thing forever.
MARKETER_PERMISSIONS = {
    "flows": {
        "flow": ALL,
        "flowversion": READ,
        "node": READ,
        "edge": READ,
        "run": READ,
        "nodepass": READ,
        "launchrecord": READ,
        "limitationcounter": READ,
        "limitationgrant": READ,
        "abassignment": READ,
        "nodestat": READ,
        "auditentry": READ,
    },
    "channels": {
        "template": ALL,
        "message": READ,
    },
    "customers": {
        "customer": READ,
        "subscription": READ,
        "event": READ,
        "pointsentry": READ,
        "segment": ALL,
        "segmentmembership": ALL,
        "promopool": ALL,
        "promocode": ALL,
    },
}


def create_marketer_group(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations ran (post_migrate);
    # on a fresh database they do not exist yet at this point.
    for app_config in apps.get_app_configs():
        if app_config.label in MARKETER_PERMISSIONS:
            # create_permissions skips an app without a models module, which
            # the migration state's app configs never have.
            original = getattr(app_config, "models_module", None)
            app_config.models_module = original or True
            try:
                create_permissions(app_config, verbosity=0, apps=apps)
            finally:
                app_config.models_module = original

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=MARKETER_GROUP)
    wanted = [
        (app_label, f"{action}_{model}")
        for app_label, models in MARKETER_PERMISSIONS.items()
        for model, actions in models.items()
        for action in actions
    ]
    permissions = []
    for app_label, codename in wanted:
        permissions.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    group.permissions.set(permissions)


def remove_marketer_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=MARKETER_GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("customers", "0001_initial"),
        ("channels", "0001_initial"),
        ("flows", "0002_run_node_entered_launch_prev"),
    ]

    operations = [
        migrations.RunPython(create_marketer_group, remove_marketer_group),
    ]
