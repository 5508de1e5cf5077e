"""Assertions shared by test packages."""


def assert_json_errors(response, code: int) -> list[dict]:
    """The response is the JSON error contract with status `code`; its errors."""
    assert response.status_code == code, response.content[:500]
    assert response["Content-Type"] == "application/json"
    errors = response.json()["errors"]
    assert errors and all({"field", "message"} <= set(item) for item in errors)
    return errors


# The data migrations that build the Marketer group, in order.
MARKETER_MIGRATIONS = (
    ("flows", "0003_marketer_group", "create_marketer_group"),
    ("flows", "0007_move_audit_entries", "grant_audit_view"),
)


def marketer_group():
    """The Marketer group as the migrations built it. A transactional test
    flushes the tables, so then it is built again by the migrations' own
    functions, each on the models of its own migration state."""
    import importlib

    from django.contrib.auth.models import Group
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    if not Group.objects.filter(name="Marketer").exists():
        loader = MigrationLoader(connection)
        for app_label, name, function in MARKETER_MIGRATIONS:
            module = importlib.import_module(f"{app_label}.migrations.{name}")
            getattr(module, function)(loader.project_state((app_label, name)).apps, None)
    return Group.objects.get(name="Marketer")
