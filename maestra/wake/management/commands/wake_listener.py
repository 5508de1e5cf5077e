"""Run a wake listener in the foreground (PostgreSQL): every qcluster worker
already runs one, so this is for a deployment that wants the listener in its
own process, or for looking at it. Ctrl-C stops it."""

import signal
import threading

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from maestra.wake import core
from maestra.wake.listener import Listener


class Command(BaseCommand):
    help = "Listen for wake-ups (PostgreSQL LISTEN/NOTIFY) and run the woken work at once."

    def add_arguments(self, parser):
        parser.add_argument(
            "--once", action="store_true", help="run every target once, now, and exit (no listening)"
        )

    def handle(self, *args, once: bool = False, **options):
        if once:
            for target in sorted(core.targets()):
                counts = core.run(target, force=True)
                self.stdout.write(f"{target}: {counts}")
            return
        if connection.vendor != "postgresql":
            raise CommandError(
                "wake_listener needs PostgreSQL (LISTEN/NOTIFY); on SQLite the tasks do it all"
            )
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        self.stdout.write("listening for wake-ups (one listener holds the lock; Ctrl-C stops)")
        Listener(stop=stop).serve()
