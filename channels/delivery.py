"""The delivery worker: sends what the outbox holds, outside any transaction.
A worker that dies loses at most the group of messages inside its provider
calls (docs/delivery.md).

1. Claim. In one transaction: take a chunk of due `queued` rows with SELECT …
   FOR UPDATE SKIP LOCKED (the ORM's select_for_update; skipped on SQLite,
   which has a single writer), **service lane first**: rows that are not
   marketing (service templates, webhooks) are taken before any marketing
   row, however old the marketing backlog, so a password reset never waits
   behind a campaign for more than the chunk in hand. Read consent again for
   the whole chunk (one query: a customer who unsubscribed since the row was
   queued wins, the row is `not_sent`); apply the communication policy
   (channels/policy.py: quiet hours, frequency caps); mark the rest
   `claimed`, with a lease and this claim's owner token; commit. Any number
   of workers share the queue and none takes a row another one holds.
2. Send, group by group, with no transaction open around the provider calls
   (channels/sending.py): a group (one channel, at most its backend's
   group_size rows: 1 for a one-by-one backend) goes `claimed` → `sending` in
   the very UPDATE that records the previous group's outcomes (one
   statement, one commit per group). So a worker has at most one group
   `sending` at any moment: the one inside the provider calls.
3. Record the outcomes: sent; transient error → queued again later, until
   the retries run out; permanent error → failed.

Why a `claimed` status rather than `queued` rows carrying a lease: the
frequency cap must count the messages a worker has decided to send, and a
status makes that a plain, indexable condition (a lease in the future is not
one); the claim's index holds only what is really waiting; and the outbox
admin shows what a worker holds.

When a worker dies, or hangs past its lease:
- its `claimed` rows were never tried: when the lease ends they go back to
  `queued`, attempts untouched, and another worker sends them (release_claims);
- its `sending` group may or may not have reached the provider: its rows
  become failed with reason `unknown_outcome` and are never sent again,
  because a lost message beats a duplicate (expire_leases). A backend whose
  provider honours the idempotency key opts out of that
  (Backend.resends_unknown_outcome): the rows are queued again, with the same
  key, while they have retries left.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections import Counter, defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from channels.backends import UNKNOWN_OUTCOME, channels_resending_unknown_outcomes, send_one
from channels.models import Message, Template
from channels.outbox import consent_problem
from channels.policy import PERSONAL_CHANNELS, current_policy, enforce
from channels.ratelimit import limiter
from channels.sending import (
    Pending,
    Sender,
    first_group,
    flush,
    forget_web_push_endpoints,
    salvage,
    send_chunk,
)
from customers.models import Subscription

# Re-exported: the test send (channels/sendtest.py) and older callers.
__all__ = ["UNKNOWN_OUTCOME", "forget_web_push_endpoints", "send_one"]

logger = logging.getLogger(__name__)

# Counts of messages held back at the claim: by the communication policy
# (channels/policy.py), or not_sent because consent was withdrawn meanwhile.
HELD_COUNTS = ("deferred", "not_sent")
# The lanes, in claim order: `service` (not marketing: service templates,
# webhooks, anything a person waits for) before `marketing`.
LANES = ("service", "marketing")

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


def claim(*, now: datetime, size: int, lanes: tuple[str, ...] = LANES) -> list[dict]:
    """Take up to `size` due rows for this worker (committed before returning)."""
    return claim_chunk(now=now, size=size, lanes=lanes)[0]


def claim_chunk(
    *,
    now: datetime,
    size: int,
    lanes: tuple[str, ...] = LANES,
    sender: Sender | None = None,
    previous: Pending | None = None,
) -> tuple[list[dict], Counter[str]]:
    """Take up to `size` due rows, the service lane first (then marketing,
    when `lanes` has it): the ones to send now (marked `claimed` under a new
    owner token, committed before returning; each row dict has it as
    "claimed_by"; service rows first), and the counts of those held back in
    the same transaction ("not_sent": consent withdrawn since queueing, quiet
    hours past relevance, a frequency cap; "deferred": quiet hours).

    With a `sender` (a drain), the same commit also marks the chunk's first
    group `sending` (channels.sending.first_group: it is sent right after
    the commit; its rows come back with "started") and records `previous`,
    the last outcomes of the drain's previous chunk: one commit where there
    were three, and a row sent in the first group is written twice in all
    (claimed + sending, then its outcome), not three times."""
    # A lease measures time from the claim itself, not from the start of the
    # round (`now`, which picks what is due).
    lease_until = timezone.now() + timedelta(seconds=settings.MAESTRA_DELIVERY_LEASE)
    token = claim_token()
    policy = current_policy()
    held: Counter[str] = Counter()
    start: list[int] = []
    with transaction.atomic():
        if previous is not None and sender is not None:
            flush(previous, sender=sender)
        due = (
            Message.objects.select_for_update(skip_locked=True)
            .filter(status=Message.Status.QUEUED, next_attempt_at__lte=now)
            .order_by("next_attempt_at", "id")
        )
        fields = ("id", "customer_id", "channel", "marketing", "expires_at")
        candidates: list[dict] = []
        # One query per lane, each on its own partial index
        # (message_service_queued_idx, message_queued_idx): the service lane
        # is a short scan however long the marketing backlog.
        for lane in LANES:
            if lane in lanes and len(candidates) < size:
                rows = due.filter(marketing=(lane == "marketing")).values(*fields)
                candidates += list(rows[: size - len(candidates)])
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
        if ids and sender is not None:
            chosen = set(ids)
            start = first_group([row for row in candidates if row["id"] in chosen], sender=sender)
        if start:
            starting = Q(id__in=start)
            Message.objects.filter(id__in=ids).update(
                status=Case(
                    When(starting, then=Value(Message.Status.SENDING)), default=Value(Message.Status.CLAIMED)
                ),
                attempts=Case(
                    When(starting, then=F("attempts") + 1),
                    default=F("attempts"),
                    output_field=Message._meta.get_field("attempts"),
                ),
                lease_until=lease_until,
                claimed_by=token,
            )
        elif ids:
            Message.objects.filter(id__in=ids).update(
                status=Message.Status.CLAIMED, lease_until=lease_until, claimed_by=token
            )
    if not ids:
        return [], held
    rows = list(
        Message.objects.filter(id__in=ids, claimed_by=token)
        .order_by("marketing", "next_attempt_at", "id")
        .values(
            "id",
            "marketing",
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
    if start:
        started = set(start)
        for row in rows:
            row["started"] = row["id"] in started
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


def deliver_due(
    *,
    limit: int = 500,
    now: datetime | None = None,
    lanes: tuple[str, ...] = LANES,
    sender: Sender | None = None,
) -> dict[str, int]:
    """Send up to `limit` due messages (of `lanes`). Returns counts: claimed,
    sent, retried, failed, expired (sends whose lease ran out), and, when
    some were, released (claims whose lease ran out, back in the queue),
    deferred and not_sent (held back at the claim). Held rows count towards
    `limit` too. A caller that loops passes its `sender`, so backends (open
    connections) live across rounds; without one a round opens and closes its own."""
    # Without a given `now`, each chunk reads the clock again: a service
    # message queued while this round drains a backlog is due at the next chunk.
    fixed_now = now
    now = now or timezone.now()
    own = sender is None
    if own:
        sender = open_sender()
    round_counts: Counter[str] = Counter({"claimed": 0, "sent": 0, "retried": 0, "failed": 0})
    before = Counter(sender.counts)
    round_counts["expired"] = expire_leases(now=now)
    released = release_claims(now=now)
    if released:
        round_counts["released"] = released
    taken = 0
    # The last outcomes of a chunk, written with the next claim (or below).
    pending = Pending()
    try:
        while taken < limit:
            size = min(settings.MAESTRA_DELIVERY_CHUNK, limit - taken)
            rows, held = claim_chunk(
                now=fixed_now or timezone.now(), size=size, lanes=lanes, sender=sender, previous=pending
            )
            pending = Pending()
            if not rows and not held:
                break
            taken += len(rows) + sum(held.values())
            round_counts["claimed"] += len(rows)
            round_counts.update(held)
            if rows:
                pending = send_chunk(rows, sender=sender)
        flush(pending, sender=sender)
    except BaseException:
        salvage(pending)
        raise
    finally:
        if own:
            sender.close()
    round_counts.update(sender.counts - before)
    return dict(round_counts)


def open_sender() -> Sender:
    """Backends and the rate limiter for one drain (closed by Sender.close)."""
    return Sender(counts=Counter(), backends={}, limiter=limiter())


def deliver_all_due(
    *, limit: int = 500, max_rounds: int = 10_000, lanes: tuple[str, ...] = LANES
) -> dict[str, int]:
    """deliver_due until nothing is due (retries wait for later). Used by
    flows_tick, so one tick delivers what it queued. One set of backends for
    the whole loop: SMTP sessions and HTTP keep-alive connections are reused."""
    totals: Counter[str] = Counter()
    sender = open_sender()
    try:
        for _ in range(max_rounds):
            counts = deliver_due(limit=limit, lanes=lanes, sender=sender)
            totals.update(counts)
            if counts["claimed"] == 0 and not any(counts.get(key) for key in HELD_COUNTS):
                break
    finally:
        sender.close()
    result = {key: totals[key] for key in ("claimed", "sent", "retried", "failed", "expired")}
    # Present only when some claims were given back, or some rows held back.
    result.update({key: totals[key] for key in ("released", *HELD_COUNTS) if totals[key]})
    return result


def drain(*, lanes: tuple[str, ...] = LANES) -> dict[str, int]:
    """Deliver everything due, until nothing is: the sends whose worker
    vanished are swept first, then deliver_all_due. The django-q2 task
    (channels.tasks.deliver_task) and the last step of a flows tick."""
    counts = Counter(expired=expire_leases())
    counts.update(deliver_all_due(lanes=lanes))
    return dict(counts)


def due_backlog(*, cap: int) -> int:
    """How many messages are queued and due, counted up to `cap` (a bounded
    count: the helpers' decision needs no exact figure)."""
    due = Message.objects.filter(status=Message.Status.QUEUED, next_attempt_at__lte=timezone.now())
    return len(due.values_list("id", flat=True)[:cap])


# TRANSITIONAL (issue 12): removed after the next release. The task's old
# path, which django-q2 Schedules and queued tasks may still name; the task
# is channels.tasks.deliver_task.
deliver_task = drain
