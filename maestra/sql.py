"""The few set-based statements the ORM cannot express, written once for both
PostgreSQL and SQLite (3.35+: UPDATE … FROM, ON CONFLICT … DO UPDATE, RETURNING).

A batch of rows always travels as ONE JSON parameter, read back in SQL as a
derived table `r` (jsonb_to_recordset on PostgreSQL, json_each on SQLite).
So a statement is one query whatever the batch size: Django's bulk_create
would split a 5,000-row insert into ~500 statements on SQLite (999 parameters
per statement), and a VALUES list with one parameter per cell grows the query
text and the parse time with the batch."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from django.db import connection

# The largest value of an integer column (IntegerField, PositiveIntegerField)
# on PostgreSQL. Validators refuse larger numbers where they enter (a launch
# cap, a limitation's max, a points amount), so no write can fail with
# "integer out of range" inside the engine's transaction.
MAX_INT = 2**31 - 1

# Column kinds a row may carry, and their PostgreSQL types.
_PG_TYPES = {
    "int": "bigint",
    "bool": "boolean",
    "ts": "timestamptz",
    "text": "text",
    "json": "jsonb",
}


def db_value(value):
    """A datetime as the backend stores it (SQLite keeps naive UTC text; raw
    SQL must compare against the same text the ORM wrote)."""
    if isinstance(value, datetime):
        return connection.ops.adapt_datetimefield_value(value)
    return value


def _dumps(payload: list) -> str:
    """The batch as JSON text. orjson is several times faster than json on the
    engine's big batches (rendered messages, node passes); what it refuses
    (an integer beyond 64 bits in an event payload, a non-text key) goes
    through the standard library, which writes the same JSON."""
    try:
        return orjson.dumps(payload).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(payload, separators=(",", ":"))


def _json_cell(value: Any, kind: str, on_postgres: bool) -> Any:
    if kind == "ts" and value is not None:
        stored = connection.ops.adapt_datetimefield_value(value)
        # SQLite: the very text the ORM writes (naive UTC), so comparisons with
        # ORM-written rows hold; PostgreSQL parses ISO 8601 with its offset.
        return stored if isinstance(stored, str) else stored.isoformat()
    if kind == "bool" and value is not None:
        return bool(value)
    if kind == "json" and not on_postgres:
        # SQLite keeps JSON as text: send the very text the ORM would write
        # (json_extract of a JSON string yields it unchanged).
        return json.dumps(value)
    return value


def json_rows(columns: Mapping[str, str], rows: Iterable[Sequence | Mapping]) -> tuple[str, list]:
    """(sql, params) of a derived table `r` holding `rows`, bound as one JSON
    parameter. `columns` maps name → kind ("int", "bool", "ts", "text", "json"); a row
    is a tuple in the order of `columns` or a mapping by name."""
    names = list(columns)
    on_postgres = connection.vendor == "postgresql"
    # Only these columns need converting; the rest go into the JSON as they are.
    special = [
        (index, name, columns[name])
        for index, name in enumerate(names)
        if columns[name] in ("ts", "bool") or (columns[name] == "json" and not on_postgres)
    ]
    # A batch shares a handful of moments (now, the trigger time): converting
    # each distinct datetime once is most of the cost of a big batch.
    moments: dict[datetime, Any] = {}
    payload = []
    for row in rows:
        if isinstance(row, Mapping):
            cells = {name: row.get(name) for name in names}
        else:
            if len(row) != len(names):
                raise ValueError(f"a row of {len(row)} values for {len(names)} columns")
            cells = dict(zip(names, row, strict=True))
        for _index, name, kind in special:
            value = cells[name]
            if value is None:
                continue
            if kind == "ts":
                cell = moments.get(value)
                if cell is None:
                    cell = moments[value] = _json_cell(value, kind, on_postgres)
                cells[name] = cell
            else:
                cells[name] = _json_cell(value, kind, on_postgres)
        payload.append(cells)
    param = _dumps(payload)
    if on_postgres:
        definitions = ", ".join(f'"{name}" {_PG_TYPES[columns[name]]}' for name in names)
        return f"jsonb_to_recordset(%s::jsonb) AS r({definitions})", [param]
    selects = ", ".join(f'json_extract(value, \'$."{name}"\') AS "{name}"' for name in names)
    return f"(SELECT {selects} FROM json_each(%s)) AS r", [param]


def value_set(values: Iterable[Any], *, kind: str = "int") -> tuple[str, list]:
    """(sql, params) of a `SELECT` yielding the given values, bound as ONE
    parameter: the right-hand side of an IN that does not grow with the batch
    (Django's `__in=[…]` binds, and prepares in Python, one parameter per value)."""
    values = list(values)
    if connection.vendor == "postgresql":
        return f"SELECT unnest(%s::{_PG_TYPES[kind]}[])", [values]
    return "SELECT value FROM json_each(%s)", [json.dumps(values)]


def in_values(values: Iterable[Any], *, kind: str = "int"):
    """The right-hand side of `field__in=` bound as one parameter (value_set),
    for the big id lists of a batch."""
    from django.db.models.expressions import RawSQL

    statement, params = value_set(values, kind=kind)
    return RawSQL(statement, params)


def bulk_update(
    table: str,
    *,
    key: str,
    columns: dict[str, str],
    rows: Sequence[tuple],
) -> int:
    """UPDATE table SET col = r.col … FROM <rows> r WHERE table.key = r.key, one
    statement for any number of rows.

    `columns` maps column name → kind ("int", "bool", "ts", "text"); each row
    tuple holds the key first, then the columns in the dict's order. Rows are
    applied in key order, so two writers lock shared rows in the same order."""
    if not rows:
        return 0
    rows_sql, params = json_rows({key: "int", **columns}, sorted(rows, key=lambda row: row[0]))
    set_sql = ", ".join(f'"{column}" = r."{column}"' for column in columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f'UPDATE "{table}" SET {set_sql} FROM {rows_sql} WHERE "{table}"."{key}" = r."{key}"', params
        )
        return cursor.rowcount


def insert_rows(
    table: str,
    *,
    columns: dict[str, str],
    rows: Sequence[Sequence | Mapping],
    on_conflict: Sequence[str] | None = None,
    on_conflict_where: str = "",
    order_by: Sequence[str] = (),
    returning: Sequence[str] = (),
) -> list[tuple]:
    """INSERT INTO table (columns) SELECT … FROM <rows>, one statement for any
    number of rows. With `on_conflict` (the columns of a unique key), rows that
    already exist are skipped (DO NOTHING; `on_conflict_where` names the
    predicate of a partial unique index); `returning` then yields the rows
    really inserted, which is how a re-processed batch learns what it already
    did. `order_by` fixes the order rows (and their index locks) are taken in."""
    if not rows:
        return []
    rows_sql, params = json_rows(columns, rows)
    names = ", ".join(f'"{name}"' for name in columns)
    selects = ", ".join(f'r."{name}"' for name in columns)
    # "WHERE true": SQLite cannot tell ON CONFLICT of an INSERT … SELECT from a
    # join constraint without it (documented parsing ambiguity).
    statement = f'INSERT INTO "{table}" ({names}) SELECT {selects} FROM {rows_sql} WHERE true'
    if order_by:
        statement += " ORDER BY " + ", ".join(f'r."{name}"' for name in order_by)
    if on_conflict:
        statement += " ON CONFLICT (" + ", ".join(f'"{name}"' for name in on_conflict) + ")"
        if on_conflict_where:
            statement += f" WHERE {on_conflict_where}"
        statement += " DO NOTHING"
    if returning:
        statement += " RETURNING " + ", ".join(f'"{name}"' for name in returning)
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if returning else []


def increment_node_stats(counts: dict[tuple[int, str, datetime, str, bool], int]) -> None:
    """Add to the hourly node counters: {(flow_id, node_key, hour, metric, is_test): n}.
    One statement; buckets are upserted in key order, so workers adding to the
    same buckets never wait on each other in a cycle."""
    if not counts:
        return
    rows_sql, params = json_rows(
        {"flow_id": "int", "node_key": "text", "hour": "ts", "metric": "text", "is_test": "bool", "n": "int"},
        [(*bucket, n) for bucket, n in counts.items() if n],
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO flows_nodestat (flow_id, node_key, hour, metric, is_test, count) "
            f"SELECT r.flow_id, r.node_key, r.hour, r.metric, r.is_test, r.n FROM {rows_sql} WHERE true "
            "ORDER BY r.flow_id, r.node_key, r.hour, r.metric, r.is_test "
            "ON CONFLICT (flow_id, node_key, hour, metric, is_test) "
            "DO UPDATE SET count = flows_nodestat.count + excluded.count",
            params,
        )
