"""import_events FILE: send events from CSV or JSONL through the one
ingestion service (flows.engine.ingestion.ingest_events), like POST /api/v1/events.

JSONL: one object per line {"id", "customer", "type", "occurred_at",
"payload"?}; blank lines are skipped.

CSV: a header row with id, customer, type, occurred_at; optionally a
`payload` column holding a JSON object, and/or `payload.<name>` columns whose
cells become payload values (as text; use JSONL or the `payload` column for
numbers and nested values). An empty cell is left out.

Events are idempotent by id, so a file can be imported again after a failure:
what was stored is counted as duplicates. The file goes in chunks (at most
1,000 events, one transaction each); on a bad line the command stops before
that line's chunk and exits non-zero with one line naming it.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any

from flows.engine.ingestion import MAX_EVENTS, ingest_events
from maestra.importing import BadLine, ImportCommand, Rows, csv_records, read_header

REQUIRED_COLUMNS = ("id", "customer", "type", "occurred_at")
PAYLOAD_PREFIX = "payload."


def csv_events(path: Path) -> Rows:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = read_header(reader, required=REQUIRED_COLUMNS)
        unknown = [
            name
            for name in header
            if name not in (*REQUIRED_COLUMNS, "payload") and not name.startswith(PAYLOAD_PREFIX)
        ]
        if unknown:
            raise BadLine(1, f"unknown columns {unknown} (use payload.<name> for payload values)")
        for line, cells in csv_records(reader, header):
            event: dict[str, Any] = {}
            payload: dict[str, Any] = {}
            for name, cell in cells:
                if name == "payload":
                    try:
                        whole = json.loads(cell)
                    except ValueError:
                        raise BadLine(line, "payload: not JSON") from None
                    if not isinstance(whole, dict):
                        raise BadLine(line, "payload: must be a JSON object")
                    payload.update(whole)
                elif name.startswith(PAYLOAD_PREFIX):
                    payload[name.removeprefix(PAYLOAD_PREFIX)] = cell
                else:
                    event[name] = cell
            if payload:
                event["payload"] = payload
            yield line, event


class Command(ImportCommand):
    help = "Import events from a CSV or JSONL file (see the module docstring for the columns)."
    noun = "event"
    default_chunk_size = max_chunk_size = MAX_EVENTS
    chunk_size_help = f"events per transaction (1 to {MAX_EVENTS}, the default)"
    csv_rows = staticmethod(csv_events)

    def write_chunk(self, rows: list[dict[str, Any]]) -> dict[str, int]:
        result = ingest_events(items=rows)
        return {"accepted": result["accepted"], "duplicates": result["duplicates"]}

    def summary(self, totals: Counter) -> str:
        return f"accepted {totals['accepted']}, duplicates {totals['duplicates']}"
