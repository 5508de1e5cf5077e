"""What the file-import commands share (import_customers, import_events; their base,
ImportCommand):
reading CSV headers and JSONL lines with the line number of each row, writing
in chunks (one transaction each) behind a progress bar, and stopping on the
first bad line with one message that names it and says what was imported."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from maestra.api.parsers import text_problems
from maestra.errors import ApplicationError

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}

Rows = Iterator[tuple[int, dict[str, Any]]]  # (line number, row)


class BadLine(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")


def file_kind(path: Path, format: str | None) -> str:
    """ "csv" or "jsonl" for an existing file (--format wins over the extension)."""
    if not path.is_file():
        raise CommandError(f"{path}: no such file")
    kind = format or FORMATS.get(path.suffix.lower())
    if kind is None:
        raise CommandError(f"{path}: unknown extension {path.suffix!r} (use .csv or .jsonl, or --format)")
    return kind


def read_header(reader, *, required: tuple[str, ...]) -> list[str]:
    """The CSV header row, stripped; refuses an empty file, missing required
    columns and repeated or empty column names."""
    header = next(reader, None)
    if header is None:
        raise BadLine(1, f"empty file, expected a header row with {', '.join(required)}")
    header = [name.strip() for name in header]
    missing = [name for name in required if name not in header]
    if missing:
        raise BadLine(1, f"the header has no {', '.join(missing)} column")
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated or "" in header:
        raise BadLine(1, f"the header repeats or leaves empty column names: {repeated or ['']}")
    return header


def csv_records(reader, header: list[str]) -> Iterator[tuple[int, list[tuple[str, str]]]]:
    """(line number, [(column, cell)] of the non-empty cells) of each data row;
    blank rows are skipped, a row of the wrong width is refused."""
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            raise BadLine(reader.line_num, f"{len(cells)} cells where the header has {len(header)}")
        yield reader.line_num, [(name, cell) for name, cell in zip(header, cells, strict=True) if cell != ""]


def jsonl_objects(path: Path) -> Rows:
    """One JSON object per line; blank lines are skipped."""
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
            # What the API refuses in a body (NUL, lone surrogates) could not
            # be stored either: the same check, one line naming the field.
            if problems := text_problems(row):
                raise BadLine(number, f"{problems[0]['field']}: {problems[0]['message']}")
            yield number, row


def count_lines(path: Path) -> int:
    lines = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            lines += block.count(b"\n")
    return lines


def chunks(rows: Rows, size: int) -> Iterator[list[tuple[int, dict[str, Any]]]]:
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


def import_in_chunks(
    *,
    command: BaseCommand,
    path: Path,
    rows: Rows,
    chunk_size: int,
    write: Callable[[list[dict[str, Any]]], dict[str, int]],
    noun: str,
    progress: bool = True,
) -> Counter:
    """Write `rows` chunk by chunk with `write` (one transaction each; it
    returns counts, summed here) behind a progress bar on stderr. A bad line,
    or a chunk `write` refuses (an ApplicationError, such as customers'
    InvalidInput), stops the import with one CommandError naming the line
    and how many rows were imported before it."""
    totals: Counter = Counter()
    written = 0
    # tqdm writes to the real stream (Django's OutputWrapper would add a
    # newline to each redraw); the total counts lines, a close estimate of rows.
    bar = tqdm(
        total=count_lines(path),
        unit=f" {noun}s",
        file=getattr(command.stderr, "_out", command.stderr),
        disable=not progress,
        dynamic_ncols=True,
    )
    stopped = f"stopped before writing that chunk ({{written}} {noun}s before it were imported)"
    try:
        for chunk in chunks(rows, chunk_size):
            try:
                totals.update(write([row for _, row in chunk]))
            except ApplicationError as error:
                problems = error.api_errors()
                first = problems[0]
                line = chunk[first["index"]][0] if "index" in first else chunk[0][0]
                more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
                raise CommandError(
                    f"{path}: line {line}: {first['field'] or noun}: {first['message']}{more}; "
                    + stopped.format(written=written)
                ) from None
            written += len(chunk)
            bar.update(chunk[-1][0] - bar.n)
    except BadLine as error:
        raise CommandError(f"{path}: {error}; " + stopped.format(written=written)) from None
    except UnicodeDecodeError:
        raise CommandError(
            f"{path}: not UTF-8 text ({written} {noun}s before the bad bytes were imported)"
        ) from None
    except OSError as error:
        raise CommandError(f"{path}: {error.strerror or error}") from None
    finally:
        bar.close()
    return totals


class ImportCommand(BaseCommand):
    """A file-import command: FILE, --format, --chunk-size, --no-progress; the
    file's kind, its rows (`csv_rows` for CSV, one JSON object per line
    otherwise), then import_in_chunks and one summary line. A subclass says
    what its rows are (`noun`), how to read CSV (`csv_rows`), how to write a
    chunk (`write_chunk`, answering counts) and how to report them (`summary`)."""

    noun = "row"
    default_chunk_size = 5000
    max_chunk_size: int | None = None  # None: no upper bound
    chunk_size_help = "rows per transaction (default 5000)"

    def csv_rows(self, path: Path) -> Rows:
        raise NotImplementedError

    def write_chunk(self, rows: list[dict[str, Any]]) -> dict[str, int]:
        raise NotImplementedError

    def summary(self, totals: Counter) -> str:
        raise NotImplementedError

    def add_arguments(self, parser):
        parser.add_argument("file", help="a .csv or .jsonl (.ndjson) file")
        parser.add_argument(
            "--format", choices=["csv", "jsonl"], help="override the format the extension says"
        )
        parser.add_argument(
            "--chunk-size", type=int, default=self.default_chunk_size, help=self.chunk_size_help
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, file: str, format: str | None, chunk_size: int, no_progress: bool, **options):
        if self.max_chunk_size is None:
            if chunk_size < 1:
                raise CommandError("--chunk-size must be at least 1")
        elif not 1 <= chunk_size <= self.max_chunk_size:
            raise CommandError(f"--chunk-size must be between 1 and {self.max_chunk_size}")
        path = Path(file)
        kind = file_kind(path, format)
        totals = import_in_chunks(
            command=self,
            path=path,
            rows=self.csv_rows(path) if kind == "csv" else jsonl_objects(path),
            chunk_size=chunk_size,
            write=self.write_chunk,
            noun=self.noun,
            progress=not no_progress,
        )
        self.stdout.write(self.summary(totals))
