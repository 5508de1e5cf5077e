"""The squashed migrations (issue 12) stand for the history they replaced: a
database migrated at 29413d3, whose django_migrations lists the old names,
is up to date with them; a fresh one applies one migration per app."""

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder

from maestra.migration_checks import partly_applied_squashes

# Every migration of the project's apps at 29413d3, the last commit with the
# old files. Frozen: these are the rows such a database holds.
HISTORY_AT_29413D3 = {
    "customers": [
        "0001_initial",
        "0002_promopool_alerted",
        "0003_customer_privacy_permissions",
        "0004_customer_locale",
    ],
    "channels": [
        "0001_initial",
        "0002_message_policy",
        "0003_drop_redundant_fk_indexes",
        "0004_delivery_claims",
        "0005_engagement_and_translations",
        "0006_delivery_lanes_rate_buckets",
    ],
    "flows": [
        "0001_initial",
        "0002_run_node_entered_launch_prev",
        "0003_marketer_group",
        "0004_run_due_id_index",
        "0005_drop_redundant_fk_indexes",
        "0006_run_engine_error",
        "0007_move_audit_entries",
        "0008_delete_auditentry",
        "0009_flowversion_revision",
        "0010_ab_winner",
    ],
    "api": ["0001_api_keys_with_scopes", "0002_existing_keys_keep_every_scope"],
    "audit": ["0001_initial"],
    "wake": ["0001_initial"],
}
SQUASHES = {
    "customers": "0001_squashed_0004_customer_locale",
    "channels": "0001_squashed_0006_delivery_lanes_rate_buckets",
    "flows": "0001_squashed_0010_ab_winner",
    "api": "0001_squashed_0002_existing_keys_keep_every_scope",
}


def _record_only(history: dict[str, list[str]]) -> None:
    """django_migrations of our apps lists exactly `history` (the test's
    transaction undoes it)."""
    recorder = MigrationRecorder(connection)
    recorder.migration_qs.filter(app__in=HISTORY_AT_29413D3).delete()
    for app, names in history.items():
        for name in names:
            recorder.record_applied(app, name)


def test_each_app_has_one_migration_that_replaces_its_whole_old_history():
    disk = MigrationExecutor(None).loader.disk_migrations
    # Each app's first migration (later ones, added after the squash, follow it).
    ours = {key: m for key, m in disk.items() if key[0] in HISTORY_AT_29413D3 and key[1].startswith("0001_")}
    assert sorted(ours) == sorted(
        [(app, SQUASHES.get(app, names[0])) for app, names in HISTORY_AT_29413D3.items()]
    )
    for app, name in SQUASHES.items():
        assert ours[(app, name)].replaces == [(app, old) for old in HISTORY_AT_29413D3[app]]


@pytest.mark.django_db
def test_a_database_migrated_at_29413d3_applies_only_what_came_after_the_squash():
    _record_only(HISTORY_AT_29413D3)

    executor = MigrationExecutor(connection)
    planned = [
        (m.app_label, m.name) for m, _backwards in executor.migration_plan(executor.loader.graph.leaf_nodes())
    ]
    # Nothing of the old history again: only migrations written after the squash.
    assert all(app in SQUASHES and name > SQUASHES[app] for app, name in planned), planned
    for app, name in SQUASHES.items():
        assert (app, name) in executor.loader.applied_migrations
        # The old names are gone from the graph: nothing can plan them again.
        assert not {node for node in executor.loader.graph.nodes if node[0] == app} & {
            (app, old) for old in HISTORY_AT_29413D3[app]
        }


@pytest.mark.django_db
def test_migrate_refuses_a_database_partway_through_a_squashed_history():
    # flows stopped at 0006 (the rest of the history complete): Django alone
    # would skip flows and report nothing to apply.
    partial = {**HISTORY_AT_29413D3, "flows": HISTORY_AT_29413D3["flows"][:6]}
    _record_only(partial)

    errors = partly_applied_squashes(databases=["default"])
    assert [error.id for error in errors] == ["maestra.E001"]
    assert "flows.0001_squashed_0010_ab_winner replaces 10 migrations, of which only 6" in errors[0].msg
    assert "0006_run_engine_error" in errors[0].msg
    assert "29413d3" in errors[0].hint
    with pytest.raises(SystemCheckError, match="maestra.E001"):
        call_command("migrate", verbosity=0, skip_checks=False)


@pytest.mark.django_db
@pytest.mark.parametrize("history", ["complete", "fresh"], ids=["migrated at 29413d3", "fresh"])
def test_the_migration_check_passes_a_complete_or_a_squashed_history(history):
    if history == "complete":
        _record_only(HISTORY_AT_29413D3)
    # else: the test database, migrated with the squashes.
    assert partly_applied_squashes(databases=["default"]) == []
    # And the check stays out of the way of checks run without a database.
    assert partly_applied_squashes(databases=None) == []
