from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from tqdm import tqdm

from flows.engine import EngineContext, process_due_runs
from flows.entry import start_flow_for_segment
from flows.models import Flow, Run


class Command(BaseCommand):
    help = "Run a flow now for every member of a segment (batch run), with a progress bar."

    def add_arguments(self, parser):
        parser.add_argument("flow", help="flow id")
        parser.add_argument("--segment", required=True, help="segment slug")

    def handle(self, *args, **options):
        flow = Flow.objects.filter(pk=options["flow"]).first() if str(options["flow"]).isdigit() else None
        if flow is None:
            raise CommandError(f"no flow with id {options['flow']!r}")
        try:
            started = start_flow_for_segment(flow=flow, segment_slug=options["segment"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"runs started: {started}")
        in_flight = Q(flow=flow, status__in=(Run.Status.ACTIVE,))
        ctx = EngineContext()
        with tqdm(total=started, unit="run", disable=None, file=self.stderr) as bar:
            totals = {"runs": 0, "completed": 0, "stopped": 0, "waiting": 0}
            while True:
                part = process_due_runs(ctx=ctx, max_batches=1)
                if not part.get("batches"):
                    break
                for key in totals:
                    totals[key] += part.get(key, 0)
                bar.update(part.get("completed", 0) + part.get("stopped", 0) + part.get("waiting", 0))
        left = Run.objects.filter(in_flight, due_at__lte=ctx.now).count()
        self.stdout.write(
            f"completed: {totals['completed']}, stopped: {totals['stopped']}, waiting: {totals['waiting']}"
            + (f", still due: {left}" if left else "")
        )
