from django.core.management.base import BaseCommand

from flows.engine.tick import error_count, tick


class Command(BaseCommand):
    help = (
        "Do everything that is due, in process: pending launches, schedules, runs started by events, "
        "due timers, then the outbox. Prints counts, errors included; exits 0 when what failed was "
        "isolated (a launch, a fire, an event or a run), non-zero only when the system itself fails."
    )

    def add_arguments(self, parser):
        parser.add_argument("--no-deliver", action="store_true", help="leave the outbox to the delivery task")

    def handle(self, *args, **options):
        counts = tick(deliver=not options["no_deliver"])
        if not counts:
            self.stdout.write("nothing due")
        for key, value in sorted(counts.items()):
            self.stdout.write(f"{key}: {value}")
        if errors := error_count(counts):
            # The details are in the log, on the runs (monitoring page) and in the audit log.
            self.stderr.write(f"{errors} error(s) isolated; see the monitoring page and the audit log")
