from django.core.management.base import BaseCommand

from flows.tick import tick


class Command(BaseCommand):
    help = (
        "Do everything that is due, in process: pending launches, schedules, runs started by events, "
        "due timers, then the outbox. Prints counts."
    )

    def add_arguments(self, parser):
        parser.add_argument("--no-deliver", action="store_true", help="leave the outbox to the delivery task")

    def handle(self, *args, **options):
        counts = tick(deliver=not options["no_deliver"])
        if not counts:
            self.stdout.write("nothing due")
        for key, value in sorted(counts.items()):
            self.stdout.write(f"{key}: {value}")
