"""Print a flow's document (maestra.flow/1) to stdout.

manage.py export_flow 12 [--version live|draft|N]
"""

from django.core.management.base import BaseCommand, CommandError

from flows.document import dump_document
from flows.errors import VersionNotFound
from flows.lifecycle.drafts import export_document
from flows.models import Flow


class Command(BaseCommand):
    help = "Print the document of a flow version (live by default) as JSON."

    def create_parser(self, prog_name, subcommand, **kwargs):
        # The documented option is --version (which version to export); Django's
        # own --version (print Django's version) gives way to it.
        kwargs.setdefault("conflict_handler", "resolve")
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("flow", metavar="FLOW", help="flow id")
        parser.add_argument(
            "--version",
            dest="flow_version",
            metavar="live|draft|N",
            default="live",
            help="live (default), draft or a version number",
        )

    def handle(self, *args, **options):
        try:
            flow_id = int(options["flow"])
        except ValueError:
            raise CommandError(f"FLOW must be a flow id (a number), not {options['flow']!r}") from None
        flow = Flow.objects.filter(pk=flow_id).first()
        if flow is None:
            raise CommandError(f"Flow {flow_id} does not exist")
        try:
            document = export_document(flow=flow, version=options["flow_version"])
        except VersionNotFound as error:
            raise CommandError(error.message) from None
        self.stdout.write(dump_document(document, indent=2))
