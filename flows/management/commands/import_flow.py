"""Create a flow from a maestra.flow/1 document file; optionally launch it.

    manage.py import_flow flow.json [--launch]
    cat flow.json | manage.py import_flow - --launch

Prints the new flow's id alone on the last line (for scripts). With --launch
the launch is finished in process, so no cluster is needed.
"""

import json
import sys

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from flows.document import DocumentError
from flows.errors import LifecycleError
from flows.lifecycle.drafts import create_flow
from flows.lifecycle.launch import finish_launch, launch_flow
from flows.models import Flow


def format_error(error: dict) -> str:
    """ "node.field: message" (the node or field part left out when empty)."""
    place = ".".join(part for part in (error.get("node"), error.get("field")) if part)
    return f"{place}: {error['message']}" if place else error["message"]


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


class Command(BaseCommand):
    help = "Create a flow from a maestra.flow/1 document (FILE or - for stdin) and print its id."

    def add_arguments(self, parser):
        parser.add_argument("file", metavar="FILE", help="document file, or - to read stdin")
        parser.add_argument("--launch", action="store_true", help="launch the flow right away")

    def handle(self, *args, **options):
        path = options["file"]
        # A byte order mark (editors on Windows write one) is not part of the JSON.
        text = self._read(path).removeprefix("\ufeff")
        try:
            data = json.loads(text, parse_constant=_refuse_constant)
        except ValueError as error:
            raise CommandError(f"{path} is not JSON: {error}") from None

        # One transaction: a refused launch leaves no half-imported flow behind.
        with transaction.atomic():
            try:
                flow = create_flow(document=data)
            except DocumentError as error:
                self._print_errors(error.errors)
                raise CommandError(
                    f"{path} is not a valid flow document ({len(error.errors)} problems)"
                ) from None
            if options["launch"]:
                try:
                    flow = launch_flow(flow=flow, enqueue=False)
                except LifecycleError as error:
                    self._print_errors(error.errors)
                    raise CommandError(f"Not imported: {error.message}") from None
        if options["launch"]:
            flow = finish_launch(flow_id=flow.pk)
            if flow.status != Flow.Status.ACTIVE:
                raise CommandError(
                    f"Flow {flow.pk} was imported but its launch failed (status {flow.status})"
                )
            self.stdout.write(
                f"Imported and launched flow {flow.pk} {flow.name!r} (version {flow.live_version.number})"
            )
        else:
            self.stdout.write(f"Imported flow {flow.pk} {flow.name!r} (status {flow.status})")
            draft = flow.draft
            if draft is not None and draft.errors:
                self._print_errors(draft.errors)
        self.stdout.write(str(flow.pk))

    def _read(self, path: str) -> str:
        if path == "-":
            return sys.stdin.read()
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read()
        except OSError as error:
            raise CommandError(f"Cannot read {path}: {error.strerror or error}") from None
        except UnicodeDecodeError:
            raise CommandError(f"{path} is not UTF-8 text") from None

    def _print_errors(self, errors: list[dict]) -> None:
        for error in errors:
            self.stderr.write(format_error(error))
