"""A real local SMTP server that accepts every message and counts it; the
delivery benchmarks send to it. Stops on SIGTERM and writes its count.

    python bench/smtp_sink.py --port 2525 --out FILE

It speaks SMTP (RFC 5321: greeting, EHLO/HELO, MAIL, RCPT, DATA with the
whole message read up to its final "<CRLF>.<CRLF>", RSET, NOOP, QUIT,
pipelined commands too) on one asyncio event loop, and does nothing else:
no parsing of the message, no per-session objects beyond a buffer. It is the
harness, so it is lean, and its CPU time per message is a small share of
the benchmark's (aiosmtpd, which the tests use, costs a few times more).
"""

from __future__ import annotations

import asyncio
import collections
import json
import signal
import time
from pathlib import Path

from common import server_arguments

END_OF_DATA = b"\r\n.\r\n"
REPLIES = {
    b"EHLO": b"250-127.0.0.1\r\n250-8BITMIME\r\n250 HELP\r\n",
    b"HELO": b"250 127.0.0.1\r\n",
    b"MAIL": b"250 OK\r\n",
    b"RCPT": b"250 OK\r\n",
    b"RSET": b"250 OK\r\n",
    b"NOOP": b"250 OK\r\n",
    b"DATA": b"354 End data with <CR><LF>.<CR><LF>\r\n",
    b"QUIT": b"221 Bye\r\n",
}


class Counts:
    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0
        # Wall-clock times of the first and last message (bench/delivery.py's
        # server-side rate, without the workers' start-up).
        self.first: float | None = None
        self.last: float | None = None
        # Messages per wall-clock second (int(time.time())): a send rate
        # limit (MAESTRA_RATE_LIMITS) is held when no second exceeds it.
        self.per_second: collections.Counter[int] = collections.Counter()

    def received(self, size: int) -> None:
        self.last = time.time()
        self.first = self.first or self.last
        self.per_second[int(self.last)] += 1
        self.messages += 1
        self.bytes += size


class Session(asyncio.Protocol):
    def __init__(self, counts: Counts) -> None:
        self.counts = counts
        self.buffer = b""
        self.in_data = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(b"220 127.0.0.1 ESMTP bench sink\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        replies = []
        while True:
            if self.in_data:
                # The message ends at "<CRLF>.<CRLF>"; DATA's own CRLF is the
                # first CRLF of that mark when the message is empty.
                end = (b"\r\n" + self.buffer).find(END_OF_DATA)
                if end < 0:
                    break
                self.counts.received(max(0, end))
                self.buffer = self.buffer[end + len(END_OF_DATA) - 2 :]
                self.in_data = False
                replies.append(b"250 Message accepted\r\n")
                continue
            line, found, rest = self.buffer.partition(b"\r\n")
            if not found:
                break
            self.buffer = rest
            verb = line[:4].upper()
            replies.append(REPLIES.get(verb, b"500 Command unrecognized\r\n"))
            if verb == b"DATA":
                self.in_data = True
            elif verb == b"QUIT":
                self.transport.write(b"".join(replies))
                self.transport.close()
                return
        if replies:
            self.transport.write(b"".join(replies))


async def serve(port: int, out: Path, host: str = "127.0.0.1") -> None:
    counts = Counts()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Session(counts), host, port)
    stopped = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopped.set)
    print("ready", flush=True)
    await stopped.wait()
    server.close()
    out.write_text(
        json.dumps(
            {
                "messages": counts.messages,
                "bytes": counts.bytes,
                "first": counts.first,
                "last": counts.last,
                "peak_per_second": max(counts.per_second.values(), default=0),
            }
        )
    )


def main() -> None:
    args = server_arguments()
    asyncio.run(serve(args.port, Path(args.out), args.host))


if __name__ == "__main__":
    main()
