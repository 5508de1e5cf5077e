"""import_events FILE: send events from CSV or JSONL through the one
ingestion service (flows.ingestion.ingest_events), like POST /api/v1/events.

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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from customers.management.commands.import_customers import BadLine, chunks, count_lines
from customers.services import InvalidInput
from flows.ingestion import MAX_EVENTS, ingest_events

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
REQUIRED_COLUMNS = ("id", "customer", "type", "occurred_at")
PAYLOAD_PREFIX = "payload."


def csv_events(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise BadLine(1, f"empty file, expected a header row with {', '.join(REQUIRED_COLUMNS)}")
        header = [name.strip() for name in header]
        missing = [name for name in REQUIRED_COLUMNS if name not in header]
        if missing:
            raise BadLine(1, f"the header has no {', '.join(missing)} column")
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated or "" in header:
            raise BadLine(1, f"the header repeats or leaves empty column names: {repeated or ['']}")
        unknown = [
            name
            for name in header
            if name not in (*REQUIRED_COLUMNS, "payload") and not name.startswith(PAYLOAD_PREFIX)
        ]
        if unknown:
            raise BadLine(1, f"unknown columns {unknown} (use payload.<name> for payload values)")
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                raise BadLine(reader.line_num, f"{len(cells)} cells where the header has {len(header)}")
            event: dict[str, Any] = {}
            payload: dict[str, Any] = {}
            for name, cell in zip(header, cells):
                if cell == "":
                    continue
                if name == "payload":
                    try:
                        whole = json.loads(cell)
                    except ValueError:
                        raise BadLine(reader.line_num, "payload: not JSON") from None
                    if not isinstance(whole, dict):
                        raise BadLine(reader.line_num, "payload: must be a JSON object")
                    payload.update(whole)
                elif name.startswith(PAYLOAD_PREFIX):
                    payload[name.removeprefix(PAYLOAD_PREFIX)] = cell
                else:
                    event[name] = cell
            if payload:
                event["payload"] = payload
            yield reader.line_num, event


def jsonl_events(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError as exc:
                raise BadLine(number, f"not JSON ({exc})") from None
            if not isinstance(event, dict):
                raise BadLine(number, "expected a JSON object")
            yield number, event


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
        path = Path(file)
        if not 1 <= chunk_size <= MAX_EVENTS:
            raise CommandError(f"--chunk-size must be between 1 and {MAX_EVENTS}")
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        kind = format or FORMATS.get(path.suffix.lower())
        if kind is None:
            raise CommandError(f"{path}: unknown extension {path.suffix!r} (use .csv or .jsonl, or --format)")
        events = csv_events(path) if kind == "csv" else jsonl_events(path)

        accepted = duplicates = written = 0
        # tqdm writes to the real stream (Django's OutputWrapper would add a newline to each redraw).
        progress = tqdm(
            total=count_lines(path),
            unit=" lines",
            file=getattr(self.stderr, "_out", self.stderr),
            disable=no_progress,
            dynamic_ncols=True,
        )
        try:
            for chunk in chunks(events, chunk_size):
                try:
                    result = ingest_events(items=[event for _, event in chunk])
                except InvalidInput as error:
                    first = error.errors[0]
                    line = chunk[first["index"]][0] if "index" in first else chunk[0][0]
                    more = f" (and {len(error.errors) - 1} more problems)" if len(error.errors) > 1 else ""
                    raise CommandError(
                        f"{path}: line {line}: {first['field'] or 'event'}: {first['message']}{more};"
                        f" stopped before that chunk ({written} events before it were imported)"
                    ) from None
                accepted += result["accepted"]
                duplicates += result["duplicates"]
                written += len(chunk)
                progress.update(chunk[-1][0] - progress.n)
        except BadLine as error:
            raise CommandError(
                f"{path}: {error}; stopped before that chunk ({written} events before it were imported)"
            ) from None
        except UnicodeDecodeError:
            raise CommandError(
                f"{path}: not UTF-8 text ({written} events before the bad bytes were imported)"
            ) from None
        except OSError as error:
            raise CommandError(f"{path}: {error.strerror or error}") from None
        finally:
            progress.close()
        self.stdout.write(f"accepted {accepted}, duplicates {duplicates}")
