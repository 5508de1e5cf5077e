"""The plumbing every customers service shares (a private module: the
topic modules import it, nothing outside customers.services does).

A batch travels to the database as ONE JSON parameter that SQL unpacks into a
derived table (`Rows`), so neither SQLite's 999-variable limit nor Django's
bulk_create splitting turns a batch of 5,000 into dozens of statements.
`Errors` collects every problem of a batch before anything is written; the
cleaners turn one input value into what is stored, or raise ValueError."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

from django.db import connection
from django.utils import timezone

from customers.errors import InvalidInput
from customers.models import Channel, Customer, Subscription
from maestra import sql
from maestra.jsonvalues import json_problems, text_problem

# (TextChoices.values builds a new list on every access: too slow per row.)
CHANNELS = tuple(Channel.values)
SUBSCRIPTION_STATUSES = tuple(Subscription.Status.values)


class Errors:
    """Collects every problem of a batch, so the caller sees all of them at once."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, index: int, field: str, message: str) -> None:
        self.items.append({"index": index, "field": field, "message": message})

    def check_object(self, index: int, item: Any, allowed: Collection[str]) -> bool:
        """Whether the batch's item `index` is an object (a problem if not);
        its attributes outside `allowed` are problems too, in name order."""
        if not isinstance(item, dict):
            self.add(index, "", "must be an object")
            return False
        for key in sorted(item.keys() - allowed):
            self.add(index, key, "unknown attribute")
        return True

    def clean_optional(
        self, index: int, item: dict[str, Any], field: str, clean: Callable[[Any], Any]
    ) -> Any:
        """item[field] through `clean` when it is given and not null (a
        ValueError it raises is the field's problem, and the value stays as
        given); None otherwise."""
        value = item.get(field)
        if value is None:
            return None
        try:
            return clean(value)
        except ValueError as exc:
            self.add(index, field, str(exc))
            return value

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidInput(self.items)


def clean_unique(values: Iterable[Any], field: str, clean: Callable[[Any], Any]) -> dict[Any, None]:
    """Each value through `clean`, repeats dropped, in first-seen order (the
    keys of the answer). A value `clean` refuses (ValueError) is a problem
    named by its index; any problem raises InvalidInput listing them all."""
    errors = Errors()
    unique: dict[Any, None] = {}
    for index, value in enumerate(values):
        try:
            unique[clean(value)] = None
        except ValueError as exc:
            errors.add(index, field, str(exc))
    errors.raise_if_any()
    return unique


# --- SQL plumbing -------------------------------------------------------------
# The only places that know PostgreSQL from SQLite.


class Rows:
    """A batch of rows sent as one JSON-array parameter and read back in SQL as
    a derived table aliased `r` (maestra.sql.json_rows). `columns` maps
    name -> int|text|bool|datetime|json."""

    def __init__(self, columns: dict[str, str], rows: Iterable[dict[str, Any]]) -> None:
        kinds = {name: "ts" if kind == "datetime" else kind for name, kind in columns.items()}
        self.sql, (self.param,) = sql.json_rows(kinds, list(rows))


def json_object_with_key_sql(column: str, value_sql: str) -> str:
    """SQL for `column` (a JSON object) with one key set to the JSON text
    `value_sql`; the key is the first parameter (before those of value_sql).
    A non-object column value counts as an empty object."""
    if connection.vendor == "postgresql":
        return (
            f"(CASE WHEN jsonb_typeof({column}) = 'object' THEN {column} ELSE '{{}}'::jsonb END)"
            f" || jsonb_build_object(%s::text, ({value_sql})::jsonb)"
        )
    return (
        f"json_set(CASE WHEN json_type({column}) = 'object' THEN {column} ELSE '{{}}' END,"
        f" '$.\"' || %s || '\"', json({value_sql}))"
    )


def execute(statement: str, params: Sequence[Any]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount


def fetch(statement: str, params: Sequence[Any]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall()


# --- Validation helpers -------------------------------------------------------


def max_length(model: type, field: str) -> int:
    return model._meta.get_field(field).max_length


def text_cleaner(max_length: int, *, required: bool = False) -> Callable[[Any], str]:
    def clean(value: Any) -> str:
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise ValueError("must be a string")
        if message := text_problem(value):
            raise ValueError(message)
        value = value.strip()
        if required and not value:
            raise ValueError("must not be empty")
        if len(value) > max_length:
            raise ValueError(f"must be at most {max_length} characters")
        return value

    return clean


def json_text(value: Any) -> str:
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        raise ValueError("must be JSON-serializable (no NaN, dates as strings)") from None


def json_object_problems(value: Any, name: str) -> list[tuple[str, str]]:
    """(field, message) for each reason `value` cannot be stored as the JSON
    object `name` (custom fields, an event payload): plain JSON nested at most
    32 levels, valid Unicode (maestra/jsonvalues.py), the field naming the
    offending spot ("payload.items.0.name")."""
    if not isinstance(value, dict):
        return [(name, "must be an object")]
    if not all(isinstance(key, str) and key for key in value):
        return [(name, "keys must be non-empty strings")]
    problems = [(f"{name}.{path}" if path else name, message) for path, message in json_problems(value)]
    if not problems:
        try:
            json_text(value)
        except ValueError as exc:
            problems.append((name, str(exc)))
    return problems


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_aware(value: Any) -> bool:
    return isinstance(value, datetime) and timezone.is_aware(value)


def require_int_ids(customer_ids: Iterable[Any]) -> None:
    bad = [index for index, customer_id in enumerate(customer_ids) if not is_int(customer_id)]
    if bad:
        raise InvalidInput(
            [{"index": index, "field": "customer_id", "message": "must be an integer"} for index in bad]
        )


def missing_customers(customer_ids: Iterable[int]) -> set[int]:
    wanted = set(customer_ids)
    if not wanted:
        return set()
    found = set(Customer.objects.filter(id__in=sql.in_values(wanted)).values_list("id", flat=True))
    return wanted - found


def report_missing_customers(items: Sequence[Any], customer_id_of: Callable[[Any], int]) -> None:
    """One query; InvalidInput naming each item whose customer does not exist."""
    missing = missing_customers(customer_id_of(item) for item in items)
    if missing:
        errors = Errors()
        for index, item in enumerate(items):
            if customer_id_of(item) in missing:
                errors.add(index, "customer_id", f"customer {customer_id_of(item)} does not exist")
        errors.raise_if_any()
