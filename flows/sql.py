"""The few set-based statements the ORM cannot express, written once for both
PostgreSQL and SQLite (3.35+: UPDATE … FROM, ON CONFLICT … DO UPDATE, RETURNING)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from django.db import connection

# PostgreSQL types its VALUES lists from the first row only, as text when the
# parameter is NULL or a string: cast every column explicitly.
_PG_CASTS = {
    "int": "bigint",
    "bool": "boolean",
    "ts": "timestamptz",
    "text": "text",
}


def db_value(value):
    """A datetime as the backend stores it (SQLite keeps naive UTC text; raw
    SQL must compare against the same text the ORM wrote)."""
    if isinstance(value, datetime):
        return connection.ops.adapt_datetimefield_value(value)
    return value


def _chunks(rows: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def bulk_update(
    table: str,
    *,
    key: str,
    columns: dict[str, str],
    rows: Sequence[tuple],
    chunk: int = 2000,
) -> int:
    """UPDATE table SET col = v.col … FROM (VALUES …) v WHERE table.key = v.key.

    `columns` maps column name → type ("int", "bool", "ts", "text"), key first
    in each row tuple, then the columns in the dict's order.
    """
    if not rows:
        return 0
    names = [key, *columns]
    types = ["int", *columns.values()]
    pg = connection.vendor == "postgresql"
    total = 0
    with connection.cursor() as cursor:
        for part in _chunks(rows, chunk):
            if pg:
                row_sql = "(" + ", ".join(f"%s::{_PG_CASTS[t]}" for t in types) + ")"
            else:
                row_sql = "(" + ", ".join("%s" for _ in types) + ")"
            values_sql = ", ".join([row_sql] * len(part))
            column_list = ", ".join(f'"{n}"' for n in names)
            set_sql = ", ".join(f'"{c}" = v."{c}"' for c in columns)
            if pg:
                sql = (
                    f'UPDATE "{table}" SET {set_sql} FROM (VALUES {values_sql}) AS v({column_list}) '
                    f'WHERE "{table}"."{key}" = v."{key}"'
                )
            else:
                # SQLite names VALUES columns column1, column2, …: alias them.
                aliases = ", ".join(f'column{i + 1} AS "{n}"' for i, n in enumerate(names))
                sql = (
                    f'UPDATE "{table}" SET {set_sql} FROM (SELECT {aliases} FROM (VALUES {values_sql})) AS v '
                    f'WHERE "{table}"."{key}" = v."{key}"'
                )
            params = [db_value(value) for row in part for value in row]
            cursor.execute(sql, params)
            total += cursor.rowcount
    return total


def increment_node_stats(counts: dict[tuple[int, str, datetime, str, bool], int]) -> None:
    """Add to the hourly node counters: {(flow_id, node_key, hour, metric, is_test): n}."""
    if not counts:
        return
    items = sorted(counts.items(), key=lambda item: (item[0][0], item[0][1], item[0][3], item[0][4]))
    with connection.cursor() as cursor:
        for part in _chunks(items, 1000):
            values_sql = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(part))
            params = []
            for (flow_id, node_key, hour, metric, is_test), n in part:
                params += [flow_id, node_key, db_value(hour), metric, is_test, n]
            cursor.execute(
                "INSERT INTO flows_nodestat (flow_id, node_key, hour, metric, is_test, count) "
                f"VALUES {values_sql} "
                "ON CONFLICT (flow_id, node_key, hour, metric, is_test) "
                "DO UPDATE SET count = flows_nodestat.count + excluded.count",
                params,
            )
