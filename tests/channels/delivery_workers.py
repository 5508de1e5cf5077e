"""Two delivery workers in threads of the test process, for the concurrency
tests on PostgreSQL (each thread has its own database connection)."""

from __future__ import annotations

import threading
import time
from collections import Counter

from django.db import connection

from channels.backends.email import DjangoEmailBackend
from channels.delivery import deliver_all_due

# Messages sent per worker thread (cleared by each test).
SENT_BY: Counter[str] = Counter()
# For MAESTRA_CHANNEL_BACKENDS["email"].
SLOW_LOCMEM = f"{__name__}.SlowLocmemBackend"


class SlowLocmemBackend(DjangoEmailBackend):
    """The locmem email backend, a millisecond per message, noting which worker
    sent it, so the two workers really overlap. One message at a time, in the
    worker's own thread (the thread name tells the workers apart)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.group_size = 1

    def send(self, message):
        time.sleep(0.001)
        result = super().send(message)
        result.extra["worker"] = threading.current_thread().name
        SENT_BY[threading.current_thread().name] += 1
        return result


def run_two_workers(*, limit: int) -> dict[str, dict]:
    """deliver_all_due in two threads started together; their counts by name."""
    start = threading.Barrier(2)
    results: dict[str, dict] = {}
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            start.wait()
            results[name] = deliver_all_due(limit=limit)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=worker, args=(f"w{i}",), name=f"w{i}") for i in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    return results


# --- delivery worker processes killed with SIGKILL -----------------------------------


class MessageIdRecorder:
    """aiosmtpd handler: counts each message it accepts by its outbox row id
    (the X-Maestra-Message header). `delay` seconds pass between the end of
    the client's DATA and the server's answer, so that kills land inside
    provider calls too."""

    def __init__(self, *, delay: float) -> None:
        self.delay = delay
        self.received: Counter[int] = Counter()

    async def handle_DATA(self, server, session, envelope):
        import asyncio
        from email.parser import BytesHeaderParser

        await asyncio.sleep(self.delay)
        headers = BytesHeaderParser().parsebytes(envelope.original_content or envelope.content)
        self.received[int(headers["X-Maestra-Message"])] += 1
        return "250 Message accepted for delivery"


def wait_for_session_to_end(application_name: str, timeout: float = 20.0) -> None:
    """Block until the database session of a killed worker is gone (PGAPPNAME
    names it): the server may still be rolling back, or committing a COMMIT
    that arrived just before the kill, and the test must see the outcome."""

    def still_there() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_stat_activity WHERE application_name = %s", [application_name])
            return cursor.fetchone() is not None

    deadline = time.monotonic() + timeout
    while still_there():
        if time.monotonic() > deadline:
            raise AssertionError(f"the session {application_name} is still there")
        time.sleep(0.01)
