"""maestra/sql.py: batches bound as one JSON parameter, on both databases."""

from datetime import UTC, datetime

import pytest
from django.db import connection

from maestra import sql


@pytest.fixture
def scratch_table():
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE scratch_rows (id bigint PRIMARY KEY, name text, flag boolean, at timestamp with time zone)"
        )
    yield "scratch_rows"
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE scratch_rows")


def _select(statement: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall()


@pytest.mark.django_db(transaction=True)
def test_insert_rows_round_trips_every_kind_and_skips_conflicts(scratch_table):
    at = datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
    columns = {"id": "int", "name": "text", "flag": "bool", "at": "ts"}
    inserted = sql.insert_rows(
        scratch_table,
        columns=columns,
        rows=[(1, "Ann", 1, at), {"id": 2, "name": None, "flag": False, "at": None}],
        on_conflict=("id",),
        returning=("id",),
    )
    assert sorted(row[0] for row in inserted) == [1, 2]
    again = sql.insert_rows(
        scratch_table, columns=columns, rows=[(2, "Bob", True, at), (3, "Cy", True, at)], on_conflict=("id",),
        returning=("id",),
    )  # fmt: skip
    assert [row[0] for row in again] == [3]
    rows = _select("SELECT id, name, flag FROM scratch_rows ORDER BY id", [])
    assert [(r[0], r[1], bool(r[2])) for r in rows] == [(1, "Ann", True), (2, None, False), (3, "Cy", True)]


@pytest.mark.django_db
def test_a_batch_orjson_refuses_goes_through_the_standard_library():
    # An integer beyond 64 bits (an event payload can carry one) and a
    # non-text key: orjson raises, json writes them; the statement still runs.
    huge = 2**70
    _sql_text, params = sql.json_rows({"id": "int", "name": "text"}, [{"id": huge, "name": "big"}])
    assert params[0] == '[{"id":' + str(huge) + ',"name":"big"}]'
    assert sql._dumps([{1: "a"}]) == '[{"1":"a"}]'


@pytest.mark.django_db
def test_value_set_binds_one_parameter_whatever_the_count():
    statement, params = sql.value_set(range(5000))
    assert len(params) == 1
    assert _select(f"SELECT count(*) FROM ({statement}) AS v", params) == [(5000,)]
