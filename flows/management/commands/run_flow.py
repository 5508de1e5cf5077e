from collections import Counter

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from flows.engine.batch import EngineContext
from flows.engine.entry import start_flow_for_segment
from flows.engine.move import process_due_runs
from flows.models import Flow, Run


class Command(BaseCommand):
    help = (
        "Run a flow now for every member of a segment (a batch run), with a progress bar. Only this flow's "
        "runs move here; what they start elsewhere (emitted events) and the outbox are left to flows_tick "
        "or the cluster."
    )

    def add_arguments(self, parser):
        parser.add_argument("flow", help="flow id")
        parser.add_argument("--segment", required=True, help="segment slug")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **options):
        flow_arg = str(options["flow"])
        flow = Flow.objects.filter(pk=int(flow_arg)).first() if flow_arg.isdigit() else None
        if flow is None:
            raise CommandError(f"no flow with id {flow_arg!r}")
        try:
            started = start_flow_for_segment(flow=flow, segment_slug=options["segment"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"runs started: {started}")

        # Created after the runs, so they are all due at its `now`.
        ctx = EngineContext(flow_ids=[flow.pk])
        totals: Counter = Counter()
        # tqdm writes to the real stream (Django's OutputWrapper would add a
        # newline to each redraw). A run counts once it ended or waits.
        progress = tqdm(
            total=started,
            unit=" runs",
            file=getattr(self.stderr, "_out", self.stderr),
            disable=options["no_progress"],
            dynamic_ncols=True,
        )
        with progress:
            while True:
                part = process_due_runs(ctx=ctx, max_batches=1)
                if not part.get("batches"):
                    break
                totals.update(part)
                progress.update(part.get("completed", 0) + part.get("stopped", 0) + part.get("waiting", 0))
        # Runs a loop capped for this pass (MAESTRA_MAX_PASSES_PER_TICK) go on at the next tick.
        left = Run.objects.filter(
            flow=flow, status__in=(Run.Status.ACTIVE, Run.Status.WAITING), due_at__lte=ctx.now
        ).count()
        self.stdout.write(
            f"completed: {totals['completed']}, stopped: {totals['stopped']}, waiting: {totals['waiting']}"
            + (f", still due: {left}" if left else "")
        )
