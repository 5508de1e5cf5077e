"""A database check that `manage.py migrate` runs first: it refuses a database
that applied only part of the history a squashed migration replaces.

Why: Django can use a squash only when all or none of the migrations it
replaces are applied. In between, it silently drops the squash from the plan
(and, with the replaced files gone, the app's whole history), so `migrate`
says "No migrations to apply" and the app later fails on missing tables. This
turns that silence into an error that says what to do (README, "Upgrading").
Generic over every app: the kernel reads migrations, it imports no app."""

from __future__ import annotations

from django.core import checks
from django.db import DatabaseError, connections
from django.db.migrations.loader import MigrationLoader

# The last commit with the migration files the squashes replace.
LAST_UNSQUASHED_COMMIT = "29413d3"


def partly_applied_squashes(app_configs=None, databases=None, **kwargs) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    for alias in databases or ():
        try:
            loader = MigrationLoader(connections[alias])
        except DatabaseError:
            # An unreachable database is migrate's own error to report.
            continue
        applied = loader.applied_migrations
        for (app, name), migration in sorted(loader.disk_migrations.items()):
            replaced = migration.replaces or []
            done = [target for target in replaced if target in applied]
            if done and len(done) < len(replaced):
                errors.append(
                    checks.Error(
                        f"database {alias!r}: {app}.{name} replaces {len(replaced)} migrations, "
                        f"of which only {len(done)} are applied (the last: {done[-1][1]}); "
                        "Django would skip the app and leave its tables half-built.",
                        hint=(
                            f"Migrate at commit {LAST_UNSQUASHED_COMMIT} first, then at this one "
                            '(README, "Upgrading").'
                        ),
                        id="maestra.E001",
                    )
                )
    return errors
