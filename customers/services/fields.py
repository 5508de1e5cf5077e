"""Custom fields and profile attributes set per customer (the set_field
step, and any caller with a value per customer), in one statement."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from customers.errors import InvalidInput
from customers.models import Customer
from customers.services._support import (
    Errors,
    Rows,
    execute,
    json_object_with_key_sql,
    json_text,
    require_int_ids,
)
from customers.services.customers import PROFILE_CLEANERS
from maestra import sql
from maestra.jsonvalues import json_problems, text_problem


def _clean_field_name(field: Any) -> str:
    if not isinstance(field, str) or not field.strip():
        raise InvalidInput([{"field": "field", "message": "must be a non-empty string"}])
    if '"' in field or "\\" in field or len(field) > 200 or text_problem(field):
        # SQLite's JSON path cannot quote these; a rule could not name them either.
        raise InvalidInput(
            [{"field": "field", "message": 'must be valid text without ", \\ or NUL, at most 200 characters'}]
        )
    return field


def set_field_values(*, field: str, values: dict[int, Any]) -> int:
    """Set one attribute to a per-customer value ({customer_id: value}) in one
    statement. `field` is a profile attribute (email, phone, first_name,
    last_name, timezone — validated like in upsert_customers) or else a key
    of Customer.fields (any JSON value; other keys stay). Returns the number
    of customers updated (unknown ids are skipped)."""
    field = _clean_field_name(field)
    if not values:
        return 0
    require_int_ids(values)
    table = Customer._meta.db_table
    now = sql.db_value(timezone.now())
    if field in PROFILE_CLEANERS:
        errors = Errors()
        clean: list[dict[str, Any]] = []
        for index, (customer_id, value) in enumerate(values.items()):
            try:
                clean.append({"id": customer_id, "value": PROFILE_CLEANERS[field](value)})
            except ValueError as exc:
                errors.add(index, field, str(exc))
        errors.raise_if_any()
        # In id order, like the FOR UPDATE of upsert_customers: fewer lock-order deadlocks.
        rows = Rows({"id": "int", "value": "text"}, sorted(clean, key=lambda row: row["id"]))
        assignments = f'"{field}" = r.value'
        params: list[Any] = [now]
        if field == "email":
            # A new address has not bounced yet.
            assignments += (
                f", email_valid = CASE WHEN {table}.email = r.value THEN {table}.email_valid ELSE %s END"
            )
            params.insert(0, True)
        return execute(
            f"UPDATE {table} SET {assignments}, updated_at = %s FROM {rows.sql} WHERE {table}.id = r.id",
            [*params, rows.param],
        )
    errors = Errors()
    encoded: list[dict[str, Any]] = []
    for index, (customer_id, value) in enumerate(values.items()):
        # Checked as the key of the fields object it lands in: fields nest at most 32 levels.
        problems = json_problems({field: value})
        for path, message in problems:
            errors.add(index, path or field, message)
        if not problems:
            try:
                encoded.append({"id": customer_id, "value": json_text(value)})
            except ValueError as exc:
                errors.add(index, field, str(exc))
    errors.raise_if_any()
    rows = Rows({"id": "int", "value": "text"}, sorted(encoded, key=lambda row: row["id"]))
    merged = json_object_with_key_sql(f"{table}.fields", "r.value")
    return execute(
        f"UPDATE {table} SET fields = {merged}, updated_at = %s FROM {rows.sql} WHERE {table}.id = r.id",
        [field, now, rows.param],
    )


def set_field(*, customer_ids: list[int], field: str, value: Any) -> int:
    """The set_field step: the same value for every customer (see set_field_values)."""
    return set_field_values(field=field, values=dict.fromkeys(customer_ids, value))
