"""Assertions shared by test packages."""


def assert_json_errors(response, code: int) -> list[dict]:
    """The response is the JSON error contract with status `code`; its errors."""
    assert response.status_code == code, response.content[:500]
    assert response["Content-Type"] == "application/json"
    errors = response.json()["errors"]
    assert errors and all({"field", "message"} <= set(item) for item in errors)
    return errors


# The migration that builds the Marketer group, and its function.
MARKETER_MIGRATION = ("flows", "0001_squashed_0010_ab_winner")


def marketer_group():
    """The Marketer group as the migration built it. A transactional test
    flushes the tables, so then it is built again by the migration's own
    function, on the models of its migration state."""
    import importlib

    from django.contrib.auth.models import Group
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    if not Group.objects.filter(name="Marketer").exists():
        app_label, name = MARKETER_MIGRATION
        module = importlib.import_module(f"{app_label}.migrations.{name}")
        module.create_marketer_group(MigrationLoader(connection).project_state(MARKETER_MIGRATION).apps, None)
    return Group.objects.get(name="Marketer")
