"""gunicorn settings for S2: each worker counts its SQL statements and, on
exit, writes that count and its own peak RSS to $BENCH_WORKER_DIR/<pid>.json."""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import QueryCounter, vm_hwm_mb

accesslog = None
errorlog = "-"
loglevel = "warning"
_counter = QueryCounter()


def post_worker_init(worker):
    _counter.install()


def worker_exit(server, worker):
    out = os.environ.get("BENCH_WORKER_DIR")
    if out:
        Path(out, f"{os.getpid()}.json").write_text(
            json.dumps({"queries": _counter.count, "peak_rss_mb": vm_hwm_mb()})
        )
