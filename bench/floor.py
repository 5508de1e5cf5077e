"""The floor: S1's stages as the fewest set-based SQL statements that make the
same essential writes, with no engine around them. Nothing can do a stage
faster than this on this machine, so engine/floor says what the engine's
bookkeeping costs.

    python bench/floor.py stage1 --flow F --version V --segment S --at ISO --out FILE
        1. INSERT … SELECT a run per segment member (the entry)
        2. INSERT … SELECT an outbox row per subscribed run, rendered in SQL
        3. UPDATE the runs to wait a day
    python bench/floor.py stage2 --flow F --at ISO --out FILE
        1. INSERT … SELECT the second message for the gold half
        2. UPDATE the runs to completed

One transaction per stage. Left out on purpose (the engine does them): node
passes, hourly stats, launch records, relevance and launch-limit checks,
template rendering through Django's engine, per-customer address checks.
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Meter, QueryCounter, parse_iso, setup_django, write_result

MESSAGE_COLUMNS = (
    "customer_id, template_id, template_slug, channel, status, reason, flow_id, run_id, node_key, "
    "step_index, pass_no, is_test, marketing, rendered, context, attempts, next_attempt_at, provider_id, "
    "response_body, created_at"
)


def _message_select(*, template_slug: str, node_key: str, pass_no: int, extra_where: str) -> str:
    return (
        f"SELECT r.customer_id, t.id, t.slug, 'email', 'queued', '', r.flow_id, r.id, '{node_key}', 0, "
        f"{pass_no}, false, true, "
        "jsonb_build_object('subject', 'Hello ' || c.first_name, "
        "'text', 'Hi ' || c.first_name || ', news for ' || c.email || '.', "
        "'html', '<p>Hi ' || c.first_name || ', news for ' || c.email || '.</p>', 'to', c.email), "
        "'{}'::jsonb, 0, %(now)s, '', '', %(now)s "
        "FROM flows_run r "
        "JOIN customers_customer c ON c.id = r.customer_id "
        "JOIN customers_subscription s ON s.customer_id = r.customer_id AND s.channel = 'email' "
        "  AND s.status = 'subscribed' "
        f"JOIN channels_template t ON t.slug = '{template_slug}' "
        f"WHERE r.flow_id = %(flow)s {extra_where}"
    )


def stage1(args, cursor) -> dict:
    now = parse_iso(args.at)
    params = {
        "flow": args.flow,
        "version": args.version,
        "segment": args.segment,
        "now": now,
        "due": now + timedelta(days=1),
    }
    cursor.execute(
        "INSERT INTO flows_run (flow_id, version_id, customer_id, trigger_event_id, is_test, status, "
        "node_key, due_at, clock, node_clock, node_entered_at, seq, launched, entered_at, ended_at, "
        "stop_reason) "
        "SELECT %(flow)s, %(version)s, m.customer_id, NULL, false, 'active', 'hello', %(now)s, %(now)s, "
        "%(now)s, %(now)s, 1, false, %(now)s, NULL, '' "
        "FROM customers_segmentmembership m WHERE m.segment_id = %(segment)s",
        params,
    )
    entered = cursor.rowcount
    cursor.execute(
        f"INSERT INTO channels_message ({MESSAGE_COLUMNS}) "
        + _message_select(
            template_slug="bench-hello", node_key="hello", pass_no=1, extra_where="AND r.status = 'active'"
        ),
        params,
    )
    messages = cursor.rowcount
    cursor.execute(
        "UPDATE flows_run SET status = 'waiting', node_key = 'day', seq = 2, launched = true, "
        "due_at = %(due)s, clock = %(now)s, node_clock = %(now)s, node_entered_at = %(now)s "
        "WHERE flow_id = %(flow)s AND status = 'active'",
        params,
    )
    return {"runs": entered, "messages": messages, "updated": cursor.rowcount}


def stage2(args, cursor) -> dict:
    params = {"flow": args.flow, "now": parse_iso(args.at)}
    cursor.execute(
        f"INSERT INTO channels_message ({MESSAGE_COLUMNS}) "
        + _message_select(
            template_slug="bench-offer",
            node_key="offer",
            pass_no=4,
            extra_where="AND r.status = 'waiting' AND r.due_at <= %(now)s AND c.fields ->> 'tier' = 'gold'",
        ),
        params,
    )
    messages = cursor.rowcount
    cursor.execute(
        "UPDATE flows_run SET status = 'completed', node_key = 'offer', seq = 4, due_at = NULL, "
        "ended_at = %(now)s WHERE flow_id = %(flow)s AND status = 'waiting' AND due_at <= %(now)s",
        params,
    )
    return {"messages": messages, "updated": cursor.rowcount}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("stage", choices=("stage1", "stage2"))
    parser.add_argument("--flow", type=int, required=True)
    parser.add_argument("--version", type=int)
    parser.add_argument("--segment", type=int)
    parser.add_argument("--at", required=True)
    parser.add_argument("--out")
    args = parser.parse_args()
    setup_django()
    from django.db import connection, transaction

    counter = QueryCounter()
    with Meter() as meter:
        counter.install()
        with transaction.atomic(), connection.cursor() as cursor:
            counts = (stage1 if args.stage == "stage1" else stage2)(args, cursor)
    write_result(args.out, {**meter.result(), "queries": counter.count, "counts": counts})


if __name__ == "__main__":
    main()
