"""load_codes POOL FILE: upload promo codes, one per line, to an existing pool.

Blank lines are skipped; codes already in the pool are counted as duplicates.
Codes go in chunks (one transaction each), so a huge file never sits in memory."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from customers.errors import CustomerServiceError
from customers.services.promo_codes import add_promo_codes


class Command(BaseCommand):
    help = "Upload promo codes (one per line) to a pool; prints how many were added and how many were duplicates."

    def add_arguments(self, parser):
        parser.add_argument("pool", help="the pool's slug")
        parser.add_argument("file", help="a text file with one code per line")
        parser.add_argument(
            "--chunk-size", type=int, default=10000, help="codes per transaction (default 10000)"
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, pool: str, file: str, chunk_size: int, no_progress: bool, **options):
        path = Path(file)
        if chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1")
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        added = duplicates = 0
        chunk: list[str] = []
        chunk_lines: list[int] = []
        progress = tqdm(unit=" codes", file=getattr(self.stderr, "_out", self.stderr), disable=no_progress)

        def flush() -> None:
            nonlocal added, duplicates
            try:
                counts = add_promo_codes(pool_slug=pool, codes=chunk)
            except CustomerServiceError as error:
                first = error.errors[0]
                if "index" in first:
                    raise CommandError(
                        f"{path}: line {chunk_lines[first['index']]}: {first['message']}"
                    ) from None
                raise CommandError(error.message) from None
            added += counts["added"]
            duplicates += counts["duplicates"]
            progress.update(len(chunk))

        try:
            with path.open(encoding="utf-8-sig") as handle:
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    chunk.append(line.strip())
                    chunk_lines.append(number)
                    if len(chunk) == chunk_size:
                        flush()
                        chunk, chunk_lines = [], []
            if chunk:
                flush()
        except UnicodeDecodeError:
            raise CommandError(f"{path}: not UTF-8 text") from None
        finally:
            progress.close()
        self.stdout.write(f"added {added}, duplicates {duplicates}")
