"""import_customers FILE: create or update customers from CSV or JSONL.

CSV: a header row naming `external_id` (required) and any of email, phone,
first_name, last_name, timezone, locale; a column `subscriptions.<channel>` sets that
channel's status; every other column becomes a key of `fields` (as text —
use JSONL for numbers, booleans or nested values). An empty cell leaves the
attribute as it is.

JSONL: one object per line in the shape of customers.services.customers.upsert_customers
({"external_id", "email"?, …, "fields"?: {…}, "subscriptions"?: {…}}); blank
lines are skipped.

The file is written in chunks (--chunk-size rows, one transaction each). On
a bad row the command stops before writing that row's chunk — earlier chunks
stay written, which the error line says — and exits non-zero with one line
naming the line number.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any

from customers.services.customers import PROFILE_ATTRIBUTES, upsert_customers
from maestra.importing import ImportCommand, Rows, csv_records, read_header

SUBSCRIPTION_PREFIX = "subscriptions."


def csv_rows(path: Path) -> Rows:
    # utf-8-sig: spreadsheets often start a CSV export with a byte-order mark.
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = read_header(reader, required=("external_id",))
        for line, cells in csv_records(reader, header):
            row: dict[str, Any] = {}
            fields: dict[str, str] = {}
            subscriptions: dict[str, str] = {}
            for name, cell in cells:
                if name == "external_id" or name in PROFILE_ATTRIBUTES:
                    row[name] = cell
                elif name.startswith(SUBSCRIPTION_PREFIX):
                    subscriptions[name.removeprefix(SUBSCRIPTION_PREFIX)] = cell.strip()
                else:
                    fields[name] = cell
            if fields:
                row["fields"] = fields
            if subscriptions:
                row["subscriptions"] = subscriptions
            yield line, row


class Command(ImportCommand):
    help = "Create or update customers from a CSV or JSONL file (see the module docstring for the columns)."
    csv_rows = staticmethod(csv_rows)

    def write_chunk(self, rows: list[dict[str, Any]]) -> dict[str, int]:
        result = upsert_customers(rows=rows, source="import")
        changed = len(result.created) + len(result.changed)
        return {
            "created": len(result.created),
            "updated": len(result.changed),
            "unchanged": len(result) - changed,
        }

    def summary(self, totals: Counter) -> str:
        return f"created {totals['created']}, updated {totals['updated']}, unchanged {totals['unchanged']}"
