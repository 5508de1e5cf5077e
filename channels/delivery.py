"""The delivery worker: sends what the outbox holds, outside any transaction.
A worker that dies loses at most the message inside its provider call.

1. Claim. In one transaction: take a chunk of due `queued` rows with SELECT …
   FOR UPDATE SKIP LOCKED (the ORM's select_for_update; skipped on SQLite,
   which has a single writer); read consent again for the whole chunk (one
   query: a customer who unsubscribed since the row was queued wins, the row
   is `not_sent`); apply the communication policy (channels/policy.py: quiet
   hours, frequency caps); mark the rest `claimed`, with a lease and this
   claim's owner token; commit. Any number of workers share the queue and none
   takes a row another one holds.
2. Send, one row at a time, with no transaction open around the provider call
   (a slow provider must not hold locks). Just before its call a row goes
   `claimed` → `sending`, only while it is still under this claim, in the
   very UPDATE that records the previous row's outcome (one statement, one
   commit per message). So a worker has at most one row `sending` at any
   moment: the one inside the provider call.
3. Record the outcome: sent; transient error → queued again later, until the
   retries run out; permanent error → failed.

Why a `claimed` status rather than `queued` rows carrying a lease: the
frequency cap must count the messages a worker has decided to send, and a
status makes that a plain, indexable condition (a lease in the future is not
one); the claim's index holds only what is really waiting; and the outbox
admin shows what a worker holds.

When a worker dies, or hangs past its lease:
- its `claimed` rows were never tried: when the lease ends they go back to
  `queued`, attempts untouched, and another worker sends them (release_claims);
- its `sending` row may or may not have reached the provider: it becomes
  failed with reason `unknown_outcome` and is never sent again, because a lost
  message beats a duplicate (expire_leases). A backend whose provider honours
  the idempotency key opts out of that (Backend.resends_unknown_outcome): the
  row is queued again, with the same key, while it has retries left.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from channels.backends import (
    Backend,
    Outcome,
    Outgoing,
    SendResult,
    channels_resending_unknown_outcomes,
    get_backend,
)
from channels.links import link_url
from channels.models import Message, Template
from channels.outbox import consent_problem
from channels.policy import PERSONAL_CHANNELS, current_policy, enforce
from channels.tracking import tracked_rendered
from customers.models import Customer, Subscription

logger = logging.getLogger(__name__)

UNKNOWN_OUTCOME = "unknown_outcome"
# Counts of messages held back at the claim: by the communication policy
# (channels/policy.py), or not_sent because consent was withdrawn meanwhile.
HELD_COUNTS = ("deferred", "not_sent")
# However long a provider's Retry-After, the next try is at most this far away.
MAX_RETRY_AFTER = timedelta(days=1)

_HOST = socket.gethostname()[:40]


def claim_token() -> str:
    """A new owner token for one claim: host and process id say which worker
    holds a row (shown in the admin), the random part tells claims apart."""
    return f"{_HOST}:{os.getpid()}:{secrets.token_hex(6)}"


def release_claims(*, now: datetime | None = None) -> int:
    """Claimed rows whose lease ran out (the worker died or hung before trying
    them): back to the queue, for any worker. Returns how many."""
    now = now or timezone.now()
    return Message.objects.filter(status=Message.Status.CLAIMED, lease_until__lt=now).update(
        status=Message.Status.QUEUED, lease_until=None, claimed_by=""
    )


def expire_leases(*, now: datetime | None = None) -> int:
    """Rows whose worker vanished inside the provider call: failed with
    `unknown_outcome`, never re-sent; on channels whose backend re-sends
    unknown outcomes, queued again while retries are left. Returns how many.
    claimed_by stays on a failed row, so the worker, should it come back,
    can still record what really happened."""
    now = now or timezone.now()
    stale = Message.objects.filter(status=Message.Status.SENDING, lease_until__lt=now)
    count = 0
    resending = channels_resending_unknown_outcomes()
    if resending:
        count += stale.filter(channel__in=resending, attempts__lte=settings.MAESTRA_MAX_RETRIES).update(
            status=Message.Status.QUEUED,
            reason=f"{UNKNOWN_OUTCOME}: the delivery worker stopped while sending; queued again with the"
            " same idempotency key, which the provider de-duplicates",
            lease_until=None,
            claimed_by="",
        )
    return count + stale.update(
        status=Message.Status.FAILED,
        reason=f"{UNKNOWN_OUTCOME}: the delivery worker stopped while sending; not re-sent to avoid a duplicate",
        lease_until=None,
    )


def claim(*, now: datetime, size: int) -> list[dict]:
    """Take up to `size` due rows for this worker (committed before returning)."""
    return claim_chunk(now=now, size=size)[0]


def claim_chunk(*, now: datetime, size: int) -> tuple[list[dict], Counter[str]]:
    """Take up to `size` due rows: the ones to send now (marked `claimed`
    under a new owner token, committed before returning; each row dict has
    it as "claimed_by"), and the counts of those held back in the same
    transaction ("not_sent": consent withdrawn since queueing, quiet hours
    past relevance, a frequency cap; "deferred": quiet hours)."""
    # A lease measures time from the claim itself, not from the start of the
    # round (`now`, which picks what is due).
    lease_until = timezone.now() + timedelta(seconds=settings.MAESTRA_DELIVERY_LEASE)
    token = claim_token()
    policy = current_policy()
    held: Counter[str] = Counter()
    with transaction.atomic():
        due = (
            Message.objects.select_for_update(skip_locked=True)
            .filter(status=Message.Status.QUEUED, next_attempt_at__lte=now)
            .order_by("next_attempt_at", "id")
        )
        candidates = list(due.values("id", "customer_id", "channel", "marketing", "expires_at")[:size])
        candidates, refused = refuse_without_consent(candidates)
        if refused:
            held["not_sent"] += refused
        if policy.active:
            decision = enforce(candidates, now=now, policy=policy)
            ids = decision.send_ids
            if decision.deferred:
                held["deferred"] += decision.deferred
            if decision.not_sent:
                held["not_sent"] += decision.not_sent
        else:
            ids = [row["id"] for row in candidates]
        if ids:
            Message.objects.filter(id__in=ids).update(
                status=Message.Status.CLAIMED, lease_until=lease_until, claimed_by=token
            )
    if not ids:
        return [], held
    rows = list(
        Message.objects.filter(id__in=ids, claimed_by=token)
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
            "claimed_by",
        )
    )
    return rows, held


def refuse_without_consent(rows: list[dict]) -> tuple[list[dict], int]:
    """Consent read again at send time, for a chunk being claimed (dicts with
    id, customer_id, channel, marketing): one query for the chunk's
    subscriptions, then the same rule as when the message was queued
    (channels.outbox.consent_problem): a marketing message needs `subscribed`,
    a service message only that the customer has not unsubscribed. The rows
    that may no longer go become `not_sent` with that reason (one UPDATE per
    reason). Returns the rows that may go and how many were refused."""
    personal = [row for row in rows if row["channel"] in PERSONAL_CHANNELS]
    if not personal:
        return rows, 0
    statuses = {
        (customer_id, channel): status
        for customer_id, channel, status in Subscription.objects.filter(
            customer_id__in={row["customer_id"] for row in personal},
            channel__in={row["channel"] for row in personal},
        ).values_list("customer_id", "channel", "status")
    }
    refuse: dict[str, list[int]] = defaultdict(list)
    for row in personal:
        purpose = Template.Purpose.MARKETING if row["marketing"] else Template.Purpose.SERVICE
        problem = consent_problem(
            purpose=purpose, channel=row["channel"], status=statuses.get((row["customer_id"], row["channel"]))
        )
        if problem:
            refuse[problem].append(row["id"])
    if not refuse:
        return rows, 0
    for reason, ids in refuse.items():
        Message.objects.filter(id__in=ids).update(status=Message.Status.NOT_SENT, reason=reason)
    out = {i for ids in refuse.values() for i in ids}
    return [row for row in rows if row["id"] not in out], len(out)


def deliver_due(*, limit: int = 500, now: datetime | None = None) -> dict[str, int]:
    """Send up to `limit` due messages. Returns counts: claimed, sent,
    retried, failed, expired (sends whose lease ran out), and, when some
    were, released (claims whose lease ran out, back in the queue), deferred
    and not_sent (held back at the claim). Held rows count towards `limit`
    too."""
    now = now or timezone.now()
    counts: Counter[str] = Counter({"claimed": 0, "sent": 0, "retried": 0, "failed": 0})
    counts["expired"] = expire_leases(now=now)
    released = release_claims(now=now)
    if released:
        counts["released"] = released
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
            if rows:
                _send_chunk(rows, backends=backends, counts=counts)
    finally:
        for backend in backends.values():
            if isinstance(backend, Backend):
                try:
                    backend.close()
                except Exception:
                    logger.exception("closing the %s backend failed", backend.channel)
    return dict(counts)


def _send_chunk(rows: list[dict], *, backends: dict[str, Backend | Exception], counts: Counter[str]) -> None:
    """Send a claimed chunk row by row. Each row is marked `sending` just
    before its provider call, by the statement that records the previous
    row's outcome; the last outcome is written at the end. Should this raise
    (the database went away, the process is asked to stop), the rows not
    tried yet go back to the queue at once."""
    token = rows[0]["claimed_by"]
    secrets_by_template = _webhook_secrets(rows)
    unsubscribe_urls = _list_unsubscribe_urls(rows)
    gone: dict[int, set[str]] = defaultdict(set)
    done: Done | None = None
    try:
        for row in rows:
            started = _step(token=token, done=done, start=row["id"])
            if done is not None:
                counts[done.counter] += 1
                done = None
            if not started:
                # The claim was lost: the lease ran out and the row went back
                # to the queue (another worker may hold it now), or an
                # erasure made it not_sent. Not ours to send.
                continue
            row = {**row, "attempts": row["attempts"] + 1}
            if row["id"] in unsubscribe_urls:
                row = {
                    **row,
                    "rendered": {**row["rendered"], "list_unsubscribe": unsubscribe_urls[row["id"]]},
                }
            result = _send(row, backends=backends, secret=secrets_by_template.get(row["template_id"], ""))
            done = _outcome(row=row, result=result, clock=timezone.now())
            for device in [result, *result.extra.get("devices", [])]:
                if device.extra.get("gone_endpoint"):
                    gone[row["customer_id"]].add(device.extra["gone_endpoint"])
    except BaseException:
        _salvage(done, token=token)
        raise
    if done is not None:
        _step(token=token, done=done, start=None)
        counts[done.counter] += 1
    if gone:
        forget_web_push_endpoints(endpoints_by_customer=gone)


def _salvage(done: Done | None, *, token: str) -> None:
    """After an exception mid-chunk: keep the outcome already known and give
    the untried rows back to the queue. Best effort (the database may be the
    reason of the exception); what fails here the leases repair later."""
    try:
        if done is not None:
            _step(token=token, done=done, start=None)
        Message.objects.filter(status=Message.Status.CLAIMED, claimed_by=token).update(
            status=Message.Status.QUEUED, lease_until=None, claimed_by=""
        )
    except Exception:
        logger.exception("could not give back the rest of claim %s; its lease will", token)


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
    # Present only when some claims were given back, or some rows held back.
    result.update({key: totals[key] for key in ("released", *HELD_COUNTS) if totals[key]})
    return result


def drain() -> dict[str, int]:
    """Deliver everything due, until nothing is: the sends whose worker
    vanished are swept first, then deliver_all_due. The django-q2 task
    (channels.tasks.deliver_task) and the last step of a flows tick."""
    counts = Counter(expired=expire_leases())
    counts.update(deliver_all_due())
    return dict(counts)


# TRANSITIONAL (issue 12): removed after the next release. The task's old
# path, which django-q2 Schedules and queued tasks may still name; the task
# is channels.tasks.deliver_task.
deliver_task = drain


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
    rendered = tracked_rendered(message_id=row["id"], rendered=row["rendered"] or {})
    message = Outgoing(id=row["id"], channel=row["channel"], rendered=rendered, secret=secret)
    return send_one(message, backend=backend)


def send_one(message: Outgoing, *, backend: Backend) -> SendResult:
    """One provider call, for the worker and for a test send. A backend that
    raises may have sent the request already: the outcome is unknown, and an
    unknown outcome is never retried."""
    try:
        return backend.send(message)
    except Exception as exc:
        logger.exception("the %s backend raised on message %s", message.channel, message.id)
        return SendResult(
            outcome=Outcome.FAILED, reason=f"{UNKNOWN_OUTCOME}: {type(exc).__name__}: {exc}"[:300]
        )


# What an outcome writes, besides status and reason.
OUTCOME_FIELDS = ["response_status", "response_body", "provider_id", "sent_at", "next_attempt_at"]


@dataclass(frozen=True)
class Done:
    """A row's outcome, to be written: the counter it falls under and the
    values of the row's status, reason and OUTCOME_FIELDS."""

    id: int
    counter: str
    status: str
    reason: str
    values: dict


def _outcome(*, row: dict, result: SendResult, clock: datetime) -> Done:
    values = {
        "response_status": result.response_status,
        "response_body": result.response_body[:4096],
        "provider_id": "",
        "sent_at": None,
        "next_attempt_at": row["next_attempt_at"],
    }
    if result.outcome == Outcome.SENT:
        values.update(provider_id=result.provider_id[:200], sent_at=clock)
        return Done(row["id"], "sent", Message.Status.SENT, "", values)
    if result.outcome == Outcome.RETRY and row["attempts"] <= settings.MAESTRA_MAX_RETRIES:
        delay = timedelta(seconds=settings.MAESTRA_RETRY_DELAY)
        if result.retry_after:
            delay = max(delay, min(timedelta(seconds=result.retry_after), MAX_RETRY_AFTER))
        values["next_attempt_at"] = clock + delay
        return Done(row["id"], "retried", Message.Status.QUEUED, result.reason[:300], values)
    reason = result.reason
    if result.outcome == Outcome.RETRY:
        reason = f"{reason} (gave up after {row['attempts']} attempts)"
    return Done(row["id"], "failed", Message.Status.FAILED, reason[:300], values)


def _step(*, token: str, done: Done | None, start: int | None) -> bool:
    """Record `done`'s outcome and mark row `start` `sending` (either may be
    None) in ONE statement: one round trip and one commit per message, and
    atomic without a transaction block, so a worker never has two rows
    `sending`. True when `start` was still `claimed` under this claim.

    The outcome is written while the row is `sending` under this claim. If
    our lease ran out and a sweep declared the outcome unknown, we now know
    better and say so. A row queued again meanwhile (its backend re-sends
    unknown outcomes) is no longer ours: its next send records its outcome.
    `attempts` counts provider calls, so it grows here, not at the claim: a
    claimed row given back unsent was never attempted."""
    q = connection.ops.quote_name
    adapt = connection.ops.adapt_datetimefield_value
    lease_until = timezone.now() + timedelta(seconds=settings.MAESTRA_DELIVERY_LEASE)
    start_id = start if start is not None else 0  # 0: no row has it
    done_id = done.id if done is not None else 0
    outcome = {"status": "", "reason": "", **dict.fromkeys(OUTCOME_FIELDS)}
    if done is not None:
        outcome = {"status": done.status, "reason": done.reason, **done.values}
    # Per column: (SQL for the row that starts, its params); the finished
    # row gets its outcome value, or NULL for the lease.
    starting = {
        "status": ("'sending'", []),
        "reason": (q("reason"), []),
        "lease_until": ("%s", [adapt(lease_until)]),
        "attempts": (f"{q('attempts')} + 1", []),
        **{field: (q(field), []) for field in OUTCOME_FIELDS},
    }
    sets, params = [], []
    for column, (on_start, start_params) in starting.items():
        if column == "attempts":
            on_done, done_params = q("attempts"), []
        elif column == "lease_until":
            on_done, done_params = "NULL", []
        else:
            value = outcome[column]
            on_done, done_params = "%s", [adapt(value) if isinstance(value, datetime) else value]
        sets.append(f"{q(column)} = CASE WHEN id = %s THEN {on_start} ELSE {on_done} END")
        params += [start_id, *start_params, *done_params]
    sql = (
        f"UPDATE {q(Message._meta.db_table)} SET {', '.join(sets)}"
        " WHERE claimed_by = %s AND ("
        " (id = %s AND status = 'claimed')"
        " OR (id = %s AND (status = 'sending' OR (status = 'failed' AND reason LIKE %s))))"
        " RETURNING id"
    )
    params += [token, start_id, done_id, f"{UNKNOWN_OUTCOME}%"]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return any(row_id == start_id for (row_id,) in cursor.fetchall())


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
