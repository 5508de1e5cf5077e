"""The delivery worker: sends what the outbox holds, outside any transaction.

1. Claim a chunk of due queued rows with SELECT … FOR UPDATE SKIP LOCKED (the
   ORM's select_for_update; skipped on SQLite, which has a single writer) and
   mark them `sending` with a lease, then commit: any number of workers can
   share the queue and none takes a row another one holds. In the same
   transaction the communication policy (channels/policy.py: quiet hours,
   frequency caps) defers or refuses the chunk's marketing rows, so a cap
   holds with any number of workers.
2. Send each row through its channel's backend, with no transaction open (a
   slow provider must not hold locks).
3. Record the outcome: sent; transient error → queued again later, until the
   retries run out; permanent error → failed.

A row still `sending` after its lease (the worker died mid-send) may or may
not have reached the provider, so it becomes failed with reason
`unknown_outcome` and is never sent again: a lost message beats a duplicate.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from channels.backends import Backend, Outcome, Outgoing, SendResult, get_backend
from channels.links import link_url
from channels.models import Message, Template
from channels.policy import current_policy, enforce
from customers.models import Customer

logger = logging.getLogger(__name__)

UNKNOWN_OUTCOME = "unknown_outcome"
# Counts of messages the communication policy held back (channels/policy.py).
HELD_COUNTS = ("deferred", "not_sent")
# However long a provider's Retry-After, the next try is at most this far away.
MAX_RETRY_AFTER = timedelta(days=1)


def expire_leases(*, now: datetime | None = None) -> int:
    """Rows whose worker vanished mid-send: failed, never re-sent."""
    now = now or timezone.now()
    return Message.objects.filter(status=Message.Status.SENDING, lease_until__lt=now).update(
        status=Message.Status.FAILED,
        reason=f"{UNKNOWN_OUTCOME}: the delivery worker stopped while sending; not re-sent to avoid a duplicate",
        lease_until=None,
    )


def claim(*, now: datetime, size: int) -> list[dict]:
    """Take up to `size` due rows for this worker (committed before returning)."""
    return claim_chunk(now=now, size=size)[0]


def claim_chunk(*, now: datetime, size: int) -> tuple[list[dict], Counter[str]]:
    """Take up to `size` due rows: the ones to send now (marked `sending`,
    committed before returning), and the counts of those the communication
    policy held back in the same transaction ("deferred" by quiet hours,
    "not_sent" by quiet hours past relevance or a frequency cap)."""
    lease_until = now + timedelta(seconds=settings.MAESTRA_DELIVERY_LEASE)
    policy = current_policy()
    held: Counter[str] = Counter()
    with transaction.atomic():
        due = (
            Message.objects.select_for_update(skip_locked=True)
            .filter(status=Message.Status.QUEUED, next_attempt_at__lte=now)
            .order_by("next_attempt_at", "id")
        )
        if policy.active:
            candidates = list(due.values("id", "customer_id", "channel", "marketing", "expires_at")[:size])
            decision = enforce(candidates, now=now, policy=policy)
            ids = decision.send_ids
            if decision.deferred:
                held["deferred"] += decision.deferred
            if decision.not_sent:
                held["not_sent"] += decision.not_sent
        else:
            ids = list(due.values_list("id", flat=True)[:size])
        if ids:
            # Counted at the claim, so a send that crashed the worker still counts.
            Message.objects.filter(id__in=ids).update(
                status=Message.Status.SENDING, lease_until=lease_until, attempts=F("attempts") + 1
            )
    if not ids:
        return [], held
    rows = list(
        Message.objects.filter(id__in=ids)
        .order_by("id")
        .values(
            "id",
            "customer_id",
            "template_id",
            "channel",
            "rendered",
            "attempts",
            "is_test",
            "next_attempt_at",
        )
    )
    return rows, held


def deliver_due(*, limit: int = 500, now: datetime | None = None) -> dict[str, int]:
    """Send up to `limit` due messages. Returns counts: claimed, sent,
    retried, failed, expired (leases that ran out), and, when the
    communication policy held some back, deferred and not_sent. Held rows
    count towards `limit` too."""
    now = now or timezone.now()
    counts: Counter[str] = Counter({"claimed": 0, "sent": 0, "retried": 0, "failed": 0})
    counts["expired"] = expire_leases(now=now)
    backends: dict[str, Backend | Exception] = {}
    taken = 0
    try:
        while taken < limit:
            rows, held = claim_chunk(now=now, size=min(settings.MAESTRA_DELIVERY_CHUNK, limit - taken))
            if not rows and not held:
                break
            taken += len(rows) + sum(held.values())
            counts["claimed"] += len(rows)
            counts.update(held)
            if not rows:
                continue
            secrets = _webhook_secrets(rows)
            unsubscribe_urls = _list_unsubscribe_urls(rows)
            gone: dict[int, set[str]] = defaultdict(set)
            outcomes = []
            for row in rows:
                if row["id"] in unsubscribe_urls:
                    row = {
                        **row,
                        "rendered": {**row["rendered"], "list_unsubscribe": unsubscribe_urls[row["id"]]},
                    }
                result = _send(row, backends=backends, secret=secrets.get(row["template_id"], ""))
                outcomes.append((row, result, timezone.now()))
                for device in [result, *result.extra.get("devices", [])]:
                    if device.extra.get("gone_endpoint"):
                        gone[row["customer_id"]].add(device.extra["gone_endpoint"])
            counts.update(_record(outcomes))
            if gone:
                forget_web_push_endpoints(endpoints_by_customer=gone)
    finally:
        for backend in backends.values():
            if isinstance(backend, Backend):
                try:
                    backend.close()
                except Exception:
                    logger.exception("closing the %s backend failed", backend.channel)
    return dict(counts)


def deliver_all_due(*, limit: int = 500, max_rounds: int = 10_000) -> dict[str, int]:
    """deliver_due until nothing is due (retries wait for later). Used by
    flows_tick, so one tick delivers what it queued."""
    totals: Counter[str] = Counter()
    for _ in range(max_rounds):
        counts = deliver_due(limit=limit)
        totals.update(counts)
        if counts["claimed"] == 0 and not any(counts.get(key) for key in HELD_COUNTS):
            break
    result = {key: totals[key] for key in ("claimed", "sent", "retried", "failed", "expired")}
    # Present only when the communication policy held messages back.
    result.update({key: totals[key] for key in HELD_COUNTS if totals[key]})
    return result


def deliver_task() -> dict[str, int]:
    """The django-q2 task (schedule it, e.g. every minute: `channels.delivery.deliver_task`)."""
    return deliver_all_due()


def _webhook_secrets(rows: list[dict]) -> dict[int, str]:
    # Secrets are read at send time and never copied onto the message row.
    ids = {row["template_id"] for row in rows if row["channel"] == "webhook" and row["template_id"]}
    return dict(Template.objects.filter(id__in=ids).values_list("id", "secret")) if ids else {}


def _list_unsubscribe_urls(rows: list[dict]) -> dict[int, str]:
    """Marketing emails get an RFC 8058 one-click unsubscribe URL (the email
    backend turns it into List-Unsubscribe headers). Made at send time, so the
    token is fresh and never stored on the row."""
    ids = {row["template_id"] for row in rows if row["channel"] == "email" and row["template_id"]}
    if not ids:
        return {}
    marketing = set(
        Template.objects.filter(id__in=ids, purpose=Template.Purpose.MARKETING).values_list("id", flat=True)
    )
    return {
        row["id"]: link_url(customer_id=row["customer_id"], channel="email", action="unsubscribe")
        for row in rows
        if row["channel"] == "email" and row["template_id"] in marketing
    }


def _backend_for(channel: str, backends: dict[str, Backend | Exception]) -> Backend | Exception:
    if channel not in backends:
        try:
            backends[channel] = get_backend(channel)
        except Exception as exc:  # misconfiguration: retried, so fixing settings drains the queue
            logger.error("no usable %s backend: %s", channel, exc)
            backends[channel] = exc
    return backends[channel]


def _send(row: dict, *, backends: dict[str, Backend | Exception], secret: str) -> SendResult:
    if row["is_test"]:  # the outbox never queues test rows; never send one anyway
        return SendResult(outcome=Outcome.FAILED, reason="test_mode")
    backend = _backend_for(row["channel"], backends)
    if isinstance(backend, Exception):
        return SendResult(outcome=Outcome.RETRY, reason=f"backend_misconfigured: {backend}"[:300])
    message = Outgoing(id=row["id"], channel=row["channel"], rendered=row["rendered"] or {}, secret=secret)
    try:
        return backend.send(message)
    except Exception as exc:
        # A backend bug after the request may have gone out: the outcome is
        # unknown, and an unknown outcome is never retried.
        logger.exception("the %s backend raised on message %s", row["channel"], row["id"])
        return SendResult(
            outcome=Outcome.FAILED, reason=f"{UNKNOWN_OUTCOME}: {type(exc).__name__}: {exc}"[:300]
        )


OUTCOME_FIELDS = [
    "status",
    "reason",
    "lease_until",
    "response_status",
    "response_body",
    "provider_id",
    "sent_at",
    "next_attempt_at",
]


def _outcome(*, row: dict, result: SendResult, clock: datetime) -> tuple[str, Message]:
    """The counter an outcome falls under and the row as it is to be written
    (every field of OUTCOME_FIELDS set)."""
    message = Message(
        id=row["id"],
        lease_until=None,
        response_status=result.response_status,
        response_body=result.response_body[:4096],
        provider_id="",
        sent_at=None,
        next_attempt_at=row["next_attempt_at"],
    )
    if result.outcome == Outcome.SENT:
        message.status, message.reason = Message.Status.SENT, ""
        message.provider_id, message.sent_at = result.provider_id[:200], clock
        return "sent", message
    if result.outcome == Outcome.RETRY and row["attempts"] <= settings.MAESTRA_MAX_RETRIES:
        delay = timedelta(seconds=settings.MAESTRA_RETRY_DELAY)
        if result.retry_after:
            delay = max(delay, min(timedelta(seconds=result.retry_after), MAX_RETRY_AFTER))
        message.status, message.reason = Message.Status.QUEUED, result.reason[:300]
        message.next_attempt_at = clock + delay
        return "retried", message
    reason = result.reason
    if result.outcome == Outcome.RETRY:
        reason = f"{reason} (gave up after {row['attempts']} attempts)"
    message.status, message.reason = Message.Status.FAILED, reason[:300]
    return "failed", message


def _record(outcomes: list[tuple[dict, SendResult, datetime]]) -> Counter[str]:
    """Write a chunk's outcomes in one commit, as one executemany of a single
    UPDATE (psycopg pipelines it; bulk_update's CASE expressions cost more in
    Python than the sends). Should the worker die before this, the chunk's
    rows end as unknown_outcome: a reporting loss, never a second send."""
    counts: Counter[str] = Counter()
    params = []
    adapt = connection.ops.adapt_datetimefield_value
    for row, result, clock in outcomes:
        counter, message = _outcome(row=row, result=result, clock=clock)
        counts[counter] += 1
        params.append(
            [
                *(
                    adapt(v) if isinstance(v, datetime) else v
                    for v in (getattr(message, f) for f in OUTCOME_FIELDS)
                ),
                message.id,
                f"{UNKNOWN_OUTCOME}%",
            ]
        )
    table = connection.ops.quote_name(Message._meta.db_table)
    columns = ", ".join(f"{connection.ops.quote_name(f)} = %s" for f in OUTCOME_FIELDS)
    # Normally the rows are still ours (`sending`). If a lease ran out and a
    # sweep declared the outcome unknown, we now know better and say so.
    sql = (
        f"UPDATE {table} SET {columns} WHERE id = %s"
        f" AND (status = 'sending' OR (status = 'failed' AND reason LIKE %s))"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, params)
    return counts


def forget_web_push_endpoints(*, endpoints_by_customer: dict[int, set[str]]) -> int:
    """Drop web push subscriptions the push service says are gone (404/410),
    so later messages do not knock on a closed door. Returns how many."""
    removed = 0
    with transaction.atomic():
        customers = list(
            Customer.objects.select_for_update()
            .filter(id__in=endpoints_by_customer)
            .only("id", "push_tokens")
        )
        changed = []
        for customer in customers:
            tokens = customer.push_tokens if isinstance(customer.push_tokens, dict) else {}
            subs = tokens.get("web_push")
            if not isinstance(subs, list):
                continue
            gone = endpoints_by_customer[customer.id]
            kept = [s for s in subs if not (isinstance(s, dict) and s.get("endpoint") in gone)]
            if len(kept) != len(subs):
                removed += len(subs) - len(kept)
                customer.push_tokens = {**tokens, "web_push": kept}
                changed.append(customer)
        if changed:
            Customer.objects.bulk_update(changed, ["push_tokens"])
    return removed
