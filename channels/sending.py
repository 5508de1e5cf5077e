"""Sending a claimed chunk (channels/delivery.py claims it): in groups, with
the row updates in bulk.

A chunk is cut into groups: the rows of one lane (service before marketing)
and one channel, at most the channel backend's `group_size` of them (1 for a
backend that sends one by one; MAESTRA_DELIVERY_GROUP for email over several
SMTP connections; the batch size of a batch API), and at most one rate-limit
burst. For each group ONE statement records the previous group's outcomes and
marks this group `sending` (only rows still `claimed` under this claim); then
the backend sends the group (send_many), outside any transaction. So a worker
has at most one group `sending` at any moment: the messages in its provider
calls. A kill leaves that group `unknown_outcome` (channels.delivery.expire_leases)
and gives back every other claimed row when its lease ends.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from channels.backends import (
    UNKNOWN_OUTCOME,
    Backend,
    Outcome,
    Outgoing,
    SendResult,
    get_backend,
    unknown_outcome_result,
)
from channels.links import link_url
from channels.models import Message, Template
from channels.ratelimit import Limiter
from channels.tracking import tracked_rendered
from customers.models import Customer

logger = logging.getLogger(__name__)

# However long a provider's Retry-After, the next try is at most this far away.
MAX_RETRY_AFTER = timedelta(days=1)
# What an outcome writes, besides status and reason.
OUTCOME_FIELDS = ["response_status", "response_body", "provider_id", "sent_at", "next_attempt_at"]


@dataclass
class Sender:
    """What a drain keeps from chunk to chunk: one backend per channel (open
    SMTP connections and HTTP keep-alive survive across chunks), the rate
    limiter, the counts."""

    counts: Counter
    backends: dict
    limiter: Limiter | None = None

    def backend(self, channel: str) -> Backend | Exception:
        if channel not in self.backends:
            try:
                self.backends[channel] = get_backend(channel)
            except Exception as exc:  # misconfiguration: retried, so fixing settings drains the queue
                logger.error("no usable %s backend: %s", channel, exc)
                self.backends[channel] = exc
        return self.backends[channel]

    def close(self) -> None:
        for backend in self.backends.values():
            if isinstance(backend, Backend):
                try:
                    backend.close()
                except Exception:
                    logger.exception("closing the %s backend failed", backend.channel)
        if self.limiter is not None:
            self.limiter.close()


@dataclass(frozen=True)
class Done:
    """A row's outcome, to be written: the counter it falls under and the
    values of the row's status, reason and OUTCOME_FIELDS."""

    id: int
    counter: str
    status: str
    reason: str
    values: dict


@dataclass
class Pending:
    """Outcomes known and not written yet, with their claim's owner token:
    the drain's next write records them (the next claim, or flush() at the
    end of a round), so they cost no commit of their own."""

    token: str = ""
    done: list[Done] = field(default_factory=list)


def send_chunk(rows: list[dict], *, sender: Sender) -> Pending:
    """Send a claimed chunk group by group (see the module doc). Rows marked
    "started" were marked `sending` by the claim itself (first_group).
    Returns the last outcomes, not yet written: the caller writes them with
    its next claim, or flush(). Should this raise (the database went away,
    the process is asked to stop), the known outcomes are written and the
    rows not tried yet go back to the queue at once."""
    token = rows[0]["claimed_by"]
    secrets_by_template = _webhook_secrets(rows)
    unsubscribe_urls = _list_unsubscribe_urls(rows)
    gone: dict[int, set[str]] = defaultdict(set)
    done: list[Done] = []
    try:
        for channel, group in _groups(rows, sender=sender):
            fresh = [row["id"] for row in group if not row.get("started")]
            started = set()
            if fresh:  # one commit: the previous group's outcomes and this start
                started = advance(token=token, done=done, start=fresh)
                sender.counts.update(d.counter for d in done)
                done = []
            # A row no longer claimed by us (the lease ran out and it went
            # back to the queue, or an erasure made it not_sent) is skipped.
            group = [_attempted(row) for row in group if row.get("started") or row["id"] in started]
            if not group:
                continue
            results = _send_group(
                channel, group, sender=sender, secrets=secrets_by_template, unsubscribe_urls=unsubscribe_urls
            )
            clock = timezone.now()
            for row, result in zip(group, results, strict=True):
                done.append(outcome(row=row, result=result, clock=clock))
                for device in [result, *result.extra.get("devices", [])]:
                    if device.extra.get("gone_endpoint"):
                        gone[row["customer_id"]].add(device.extra["gone_endpoint"])
    except BaseException:
        salvage(Pending(token=token, done=done))
        raise
    if gone:
        forget_web_push_endpoints(endpoints_by_customer=gone)
    return Pending(token=token, done=done)


def flush(pending: Pending, *, sender: Sender) -> None:
    """Write outcomes still pending (one statement, one commit)."""
    if pending.done:
        advance(token=pending.token, done=pending.done, start=[])
        sender.counts.update(d.counter for d in pending.done)


def _attempted(row: dict) -> dict:
    """The row as sent: `attempts` counts provider calls, and a row the claim
    started has its attempt counted already."""
    return row if row.get("started") else {**row, "attempts": row["attempts"] + 1}


def _groups(rows: list[dict], *, sender: Sender):
    """(channel, rows) groups in sending order: lane by lane (the chunk comes
    service first), channel by channel, at most the backend's group size
    (and one rate-limit burst: the rest of a big group would only wait,
    `sending`, for tokens)."""
    by_key: dict[tuple[bool, str], list[dict]] = defaultdict(list)
    for row in rows:
        by_key[(row.get("marketing", False), row["channel"])].append(row)
    for (_marketing, channel), lane_rows in sorted(by_key.items(), key=lambda item: item[0][0]):
        backend = sender.backend(channel)
        size = max(1, backend.group_size) if isinstance(backend, Backend) else len(lane_rows)
        if sender.limiter is not None and channel in sender.limiter.rates:
            size = min(size, sender.limiter.rates[channel].capacity)
        for start in range(0, len(lane_rows), size):
            yield channel, lane_rows[start : start + size]


def first_group(rows: list[dict], *, sender: Sender) -> list[int]:
    """The ids of the group sent first, which the claim marks `sending` at
    once: one write and one commit fewer per chunk."""
    for _channel, group in _groups(rows, sender=sender):
        return [row["id"] for row in group]
    return []


def _send_group(
    channel: str, group: list[dict], *, sender: Sender, secrets: dict, unsubscribe_urls: dict
) -> list[SendResult]:
    """The provider calls of one group; one result per row, in order."""
    backend = sender.backend(channel)
    results: dict[int, SendResult] = {}
    outgoing: list[Outgoing] = []
    for row in group:
        if row["is_test"]:  # the outbox never queues test rows; never send one anyway
            results[row["id"]] = SendResult(outcome=Outcome.FAILED, reason="test_mode")
        elif isinstance(backend, Exception):
            results[row["id"]] = SendResult(
                outcome=Outcome.RETRY, reason=f"backend_misconfigured: {backend}"[:300]
            )
        else:
            rendered = row["rendered"] or {}
            if row["id"] in unsubscribe_urls:
                rendered = {**rendered, "list_unsubscribe": unsubscribe_urls[row["id"]]}
            rendered = tracked_rendered(message_id=row["id"], rendered=rendered)
            outgoing.append(
                Outgoing(
                    id=row["id"],
                    channel=channel,
                    rendered=rendered,
                    secret=secrets.get(row["template_id"], ""),
                )
            )
    while outgoing:
        # Tokens first (blocks while the provider's rate is used up), then
        # the calls at once: a grant becomes a send within milliseconds.
        take = sender.limiter.take(channel, len(outgoing)) if sender.limiter else len(outgoing)
        batch, outgoing = outgoing[:take], outgoing[take:]
        for message, result in zip(batch, _send_many(backend, batch), strict=True):
            results[message.id] = result
    return [results[row["id"]] for row in group]


def _send_many(backend: Backend, batch: list[Outgoing]) -> list[SendResult]:
    try:
        results = backend.send_many(batch)
        if len(results) != len(batch):
            raise RuntimeError(f"send_many answered {len(results)} results for {len(batch)} messages")
        return results
    except Exception as exc:
        # Some of the batch may have gone out: every outcome is unknown.
        logger.exception("the %s backend raised on a batch of %s", backend.channel, len(batch))
        return [unknown_outcome_result(exc)] * len(batch)


def salvage(pending: Pending) -> None:
    """After an exception mid-chunk: keep the outcomes already known and give
    the untried rows back to the queue. Best effort (the database may be the
    reason of the exception); what fails here the leases repair later."""
    try:
        if pending.done:
            advance(token=pending.token, done=pending.done, start=[])
        Message.objects.filter(status=Message.Status.CLAIMED, claimed_by=pending.token).update(
            status=Message.Status.QUEUED, lease_until=None, claimed_by=""
        )
    except Exception:
        logger.exception("could not give back the rest of claim %s; its lease will", pending.token)


def outcome(*, row: dict, result: SendResult, clock: datetime) -> Done:
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


def advance(*, token: str, done: list[Done], start: list[int]) -> set[int]:
    """Record the outcomes `done` and mark the rows `start` `sending`
    together: ONE statement (atomic without a transaction block, so one
    commit), so a worker never has two groups `sending`. Returns
    the ids of `start` that were still `claimed` under this claim.

    An outcome is written while its row is `sending` under this claim. If our
    lease ran out and a sweep declared the outcome unknown, we now know
    better and say so. A row queued again meanwhile (its backend re-sends
    unknown outcomes) is no longer ours: its next send records its outcome.
    `attempts` counts provider calls, so it grows here, not at the claim: a
    claimed row given back unsent was never attempted."""
    if not done and not start:
        return set()
    if connection.vendor == "postgresql":
        return _advance_postgresql(token=token, done=done, start=start)
    q = connection.ops.quote_name
    adapt = connection.ops.adapt_datetimefield_value

    def value(v):
        return adapt(v) if isinstance(v, datetime) else v

    lease_until = value(timezone.now() + timedelta(seconds=settings.MAESTRA_DELIVERY_LEASE))
    in_start = f"id IN ({', '.join(['%s'] * len(start))})" if start else "FALSE"
    # Per column: the expression for the rows that start, and the outcome
    # values of the rows that are done (None: the column stays as it is).
    columns = {
        "status": ("'sending'", lambda d: d.status),
        "reason": (None, lambda d: d.reason),
        "lease_until": ("%s", lambda d: None),
        "attempts": (f"{q('attempts')} + 1", None),
        **{field: (None, lambda d, f=field: d.values[f]) for field in OUTCOME_FIELDS},
    }
    sets, params = [], []
    for column, (on_start, on_done) in columns.items():
        whens, when_params = [], []
        if start and on_start is not None:
            whens.append(f"WHEN {in_start} THEN {on_start}")
            when_params += [*start, *([lease_until] if on_start == "%s" else [])]
        if on_done is not None:
            for d in done:
                whens.append("WHEN id = %s THEN %s")
                when_params += [d.id, value(on_done(d))]
        if whens:
            sets.append(f"{q(column)} = CASE {' '.join(whens)} ELSE {q(column)} END")
            params += when_params
    done_ids = [d.id for d in done] or [0]  # 0: no row has it
    sql = (
        f"UPDATE {q(Message._meta.db_table)} SET {', '.join(sets)}"
        f" WHERE claimed_by = %s AND (({in_start} AND status = 'claimed')"
        f" OR (id IN ({', '.join(['%s'] * len(done_ids))})"
        " AND (status = 'sending' OR (status = 'failed' AND reason LIKE %s))))"
        " RETURNING id"
    )
    params += [token, *start, *done_ids, f"{UNKNOWN_OUTCOME}%"]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        returned = {row_id for (row_id,) in cursor.fetchall()}
    return returned & set(start)


def _advance_postgresql(*, token: str, done: list[Done], start: list[int]) -> set[int]:
    """advance() on PostgreSQL: ONE statement, so one round trip and (in
    autocommit) one commit: the outcomes as arrays unnested into rows (a
    fixed number of parameters whatever the group's size, so neither the
    client nor the server parses a statement that grows with the group), and
    the start, as two data-modifying parts of one statement, which land
    together or not at all. (They touch different rows: `sending` ones and
    `claimed` ones.) Both find their rows by joining the ids to the primary
    key: `id = ANY(…) AND status = 'claimed'` let the planner, on a table
    not analysed since a backlog was queued, AND the primary key with
    message_lease_idx, which holds every row ever claimed until VACUUM: a
    scan of the whole index per group, growing with the drain."""
    table = connection.ops.quote_name(Message._meta.db_table)
    lease_until = timezone.now() + timedelta(seconds=settings.MAESTRA_DELIVERY_LEASE)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH outcomes AS (UPDATE {table} AS m SET status = v.status, reason = v.reason,"
            " lease_until = NULL, response_status = v.response_status, response_body = v.response_body,"
            " provider_id = v.provider_id, sent_at = v.sent_at, next_attempt_at = v.next_attempt_at"
            " FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::integer[], %s::text[], %s::text[],"
            " %s::timestamptz[], %s::timestamptz[])"
            " AS v(id, status, reason, response_status, response_body, provider_id, sent_at, next_attempt_at)"
            " WHERE m.id = v.id AND m.claimed_by = %s"
            " AND (m.status = 'sending' OR (m.status = 'failed' AND m.reason LIKE %s)) RETURNING m.id)"
            f" UPDATE {table} AS s SET status = 'sending', lease_until = %s, attempts = s.attempts + 1"
            " FROM unnest(%s::bigint[]) AS g(id)"
            " WHERE s.id = g.id AND s.claimed_by = %s AND s.status = 'claimed' RETURNING s.id",
            [
                [d.id for d in done],
                [d.status for d in done],
                [d.reason for d in done],
                [d.values["response_status"] for d in done],
                [d.values["response_body"] for d in done],
                [d.values["provider_id"] for d in done],
                [d.values["sent_at"] for d in done],
                [d.values["next_attempt_at"] for d in done],
                token,
                f"{UNKNOWN_OUTCOME}%",
                lease_until,
                start,
                token,
            ],
        )
        return {row_id for (row_id,) in cursor.fetchall()}


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
