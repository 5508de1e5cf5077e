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
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from flows.engine.ingestion import MAX_EVENTS, ingest_events
from maestra.importing import BadLine, Rows, csv_records, import_file, read_header

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


def write(events: list[dict[str, Any]]) -> dict[str, int]:
    result = ingest_events(items=events)
    return {"accepted": result["accepted"], "duplicates": result["duplicates"]}


class Command(BaseCommand):
    help = "Import events from a CSV or JSONL file (see the module docstring for the columns)."

    def add_arguments(self, parser):
        parser.add_argument("file", help="a .csv or .jsonl (.ndjson) file")
        parser.add_argument(
            "--format", choices=["csv", "jsonl"], help="override the format the extension says"
        )
        parser.add_argument(
            "--chunk-size",
            type=int,
            default=MAX_EVENTS,
            help=f"events per transaction (1 to {MAX_EVENTS}, the default)",
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, file: str, format: str | None, chunk_size: int, no_progress: bool, **options):
        if not 1 <= chunk_size <= MAX_EVENTS:
            raise CommandError(f"--chunk-size must be between 1 and {MAX_EVENTS}")
        totals = import_file(
            command=self,
            file=file,
            format=format,
            csv_rows=csv_events,
            chunk_size=chunk_size,
            write=write,
            noun="event",
            progress=not no_progress,
        )
        self.stdout.write(f"accepted {totals['accepted']}, duplicates {totals['duplicates']}")
