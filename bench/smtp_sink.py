"""A real local SMTP server (aiosmtpd) that accepts every message and counts
it; S1's SMTP delivery sends to it. Stops on SIGTERM and writes its count.

    python bench/smtp_sink.py --port 2525 --out FILE
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path

from aiosmtpd.controller import Controller


class CountingHandler:
    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0
        # Wall-clock times of the first and last message (bench/delivery.py's
        # server-side rate, without the workers' start-up).
        self.first = self.last = None

    async def handle_DATA(self, server, session, envelope):
        self.last = time.time()
        self.first = self.first or self.last
        self.messages += 1
        self.bytes += len(envelope.content or b"")
        return "250 Message accepted"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    handler = CountingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=args.port)
    controller.start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    print("ready", flush=True)
    stopped.wait()
    controller.stop()
    Path(args.out).write_text(
        json.dumps(
            {
                "messages": handler.messages,
                "bytes": handler.bytes,
                "first": handler.first,
                "last": handler.last,
            }
        )
    )
    sys.exit(0)


if __name__ == "__main__":
    main()
