"""A provider's batch API, stubbed on loopback for bench/delivery.py: accepts
POST {"messages": [...]}, answers {"results": [{"id": …}, …]} one entry per
item, keep-alive (HTTP/1.1), and counts the items. Stops on SIGTERM and
writes its count.

    python bench/http_batch_stub.py --port 8025 --out FILE
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from common import server_arguments


def main() -> None:
    args = server_arguments()
    # first/last: wall-clock times of the first and last request (the
    # server-side rate, without the workers' start-up).
    state = {"messages": 0, "requests": 0, "first": None, "last": None}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # As production HTTP servers do: without it the answer's body (a
        # second write after the headers) waits for the client's delayed ACK
        # of the headers, about 40 ms a request on Linux, whatever the batch.
        disable_nagle_algorithm = True

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            items = body.get("messages", []) if isinstance(body, dict) else body
            with lock:
                state["last"] = time.time()
                state["first"] = state["first"] or state["last"]
                first = state["messages"]
                state["messages"] += len(items)
                state["requests"] += 1
            answer = json.dumps({"results": [{"id": f"b{first + i}"} for i in range(len(items))]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    print("ready", flush=True)
    stopped.wait()
    server.shutdown()
    Path(args.out).write_text(json.dumps(state))
    sys.exit(0)


if __name__ == "__main__":
    main()
