from django.core.management.base import BaseCommand, CommandError

from channels.delivery import deliver_all_due, deliver_due


class Command(BaseCommand):
    help = "Send the queued messages that are due (the outbox), then print counts."

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=500, help="messages per round (default 500)")
        parser.add_argument("--once", action="store_true", help="one round only, even if more are due")

    def handle(self, *args, limit: int, once: bool, **options):
        if limit < 1:
            raise CommandError("--limit must be at least 1")
        counts = deliver_due(limit=limit) if once else deliver_all_due(limit=limit)
        # released: claims of workers that died before trying them, back in
        # the queue. deferred (quiet hours) and not_sent (consent withdrawn
        # since queueing, quiet hours past relevance, a frequency cap): held
        # back at the claim.
        keys = ("claimed", "sent", "retried", "failed", "expired", "released", "deferred", "not_sent")
        self.stdout.write(" ".join(f"{key}={counts.get(key, 0)}" for key in keys))
