"""import_customers FILE: create or update customers from CSV or JSONL.

CSV: a header row naming `external_id` (required) and any of email, phone,
first_name, last_name, timezone; a column `subscriptions.<channel>` sets that
channel's status; every other column becomes a key of `fields` (as text —
use JSONL for numbers, booleans or nested values). An empty cell leaves the
attribute as it is.

JSONL: one object per line in the shape of customers.services.upsert_customers
({"external_id", "email"?, …, "fields"?: {…}, "subscriptions"?: {…}}); blank
lines are skipped.

The file is written in chunks (--chunk-size rows, one transaction each). On
a bad row the command stops before writing that row's chunk — earlier chunks
stay written, which the error line says — and exits non-zero with one line
naming the line number.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from customers.services import PROFILE_ATTRIBUTES, InvalidInput, upsert_customers

SUBSCRIPTION_PREFIX = "subscriptions."
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


class BadLine(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")


def csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    # utf-8-sig: spreadsheets often start a CSV export with a byte-order mark.
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise BadLine(1, "empty file, expected a header row with external_id")
        header = [name.strip() for name in header]
        if "external_id" not in header:
            raise BadLine(1, "the header has no external_id column")
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated or "" in header:
            raise BadLine(1, f"the header repeats or leaves empty column names: {repeated or ['']}")
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                raise BadLine(reader.line_num, f"{len(cells)} cells where the header has {len(header)}")
            row: dict[str, Any] = {}
            fields: dict[str, str] = {}
            subscriptions: dict[str, str] = {}
            for name, cell in zip(header, cells):
                if cell == "":
                    continue
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
            yield reader.line_num, row


def jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BadLine(number, f"not JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(row, dict):
                raise BadLine(number, "expected a JSON object")
            yield number, row


def count_lines(path: Path) -> int:
    lines = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            lines += block.count(b"\n")
    return lines


class Command(BaseCommand):
    help = "Create or update customers from a CSV or JSONL file (see the module docstring for the columns)."

    def add_arguments(self, parser):
        parser.add_argument("file", help="a .csv or .jsonl (.ndjson) file")
        parser.add_argument(
            "--format", choices=["csv", "jsonl"], help="override the format the extension says"
        )
        parser.add_argument(
            "--chunk-size", type=int, default=5000, help="rows per transaction (default 5000)"
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, file: str, format: str | None, chunk_size: int, no_progress: bool, **options):
        path = Path(file)
        if chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1")
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        kind = format or FORMATS.get(path.suffix.lower())
        if kind is None:
            raise CommandError(f"{path}: unknown extension {path.suffix!r} (use .csv or .jsonl, or --format)")
        rows = csv_rows(path) if kind == "csv" else jsonl_rows(path)

        created = updated = unchanged = 0
        # tqdm writes to the real stream (Django's OutputWrapper would add a
        # newline to each redraw); the total counts lines, a close estimate of rows.
        progress = tqdm(
            total=count_lines(path),
            unit=" rows",
            file=getattr(self.stderr, "_out", self.stderr),
            disable=no_progress,
            dynamic_ncols=True,
        )
        written = 0
        try:
            for chunk in chunks(rows, chunk_size):
                try:
                    result = upsert_customers(rows=[row for _, row in chunk], source="import")
                except InvalidInput as error:
                    first = error.errors[0]
                    line = chunk[first["index"]][0]
                    more = f" (and {len(error.errors) - 1} more problems)" if len(error.errors) > 1 else ""
                    raise CommandError(
                        f"{path}: line {line}: {first['field'] or 'row'}: {first['message']}{more};"
                        f" stopped before writing that chunk ({written} rows before it were imported)"
                    ) from None
                created += len(result.created)
                updated += len(result.changed)
                unchanged += len(result) - len(result.created) - len(result.changed)
                written += len(chunk)
                progress.update(chunk[-1][0] - progress.n)
        except BadLine as error:
            raise CommandError(
                f"{path}: {error}; stopped before writing that chunk ({written} rows before it were imported)"
            ) from None
        except UnicodeDecodeError:
            raise CommandError(
                f"{path}: not UTF-8 text ({written} rows before the bad bytes were imported)"
            ) from None
        except OSError as error:
            raise CommandError(f"{path}: {error.strerror or error}") from None
        finally:
            progress.close()
        self.stdout.write(f"created {created}, updated {updated}, unchanged {unchanged}")


def chunks(
    rows: Iterator[tuple[int, dict[str, Any]]], size: int
) -> Iterator[list[tuple[int, dict[str, Any]]]]:
    """Groups of `size` (line, row); a parse error raised by `rows` ends the
    iteration before the group it falls in is yielded."""
    chunk: list[tuple[int, dict[str, Any]]] = []
    for item in rows:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
