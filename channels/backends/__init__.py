"""Delivery backends: one class per way of sending, chosen per channel in
settings.MAESTRA_CHANNEL_BACKENDS ({"email": "channels.backends.email.DjangoEmailBackend", …}).

A backend is built once per drain (channels/delivery.py), sends messages
and answers each with a SendResult; it never touches the database. The
delivery worker (channels/sending.py) turns results into row updates and
retries. A backend that can send several messages at once (parallel SMTP
connections, a provider's batch API) sets `group_size` and overrides
`send_many`: the worker then hands it up to that many messages of one channel
at a time, and marks them `sending` together (docs/delivery.md).
"""

from __future__ import annotations

import email.utils
import enum
import logging
from concurrent.futures import Future
from dataclasses import dataclass, field

import httpx
from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

from channels.netguard import DestinationNotAllowed

logger = logging.getLogger(__name__)

# The reason of a message whose provider call may or may not have happened.
UNKNOWN_OUTCOME = "unknown_outcome"
# How much of a provider's answer is kept on the row.
RESPONSE_BODY_LIMIT = 4096


class Outcome(enum.StrEnum):
    SENT = "sent"
    RETRY = "retry"  # transient: try again later
    FAILED = "failed"  # permanent: trying again cannot help


@dataclass(frozen=True)
class Outgoing:
    """One message to send, as the worker read it from its row."""

    id: int
    channel: str
    # What rendering produced plus "to" (email address, phone, token list,
    # web push subscriptions; "" for webhooks).
    rendered: dict
    # Webhooks: the template's signing secret (never stored on the row).
    secret: str = ""

    @property
    def idempotency_key(self) -> str:
        # Providers that de-duplicate by key drop a second copy of the same row.
        return f"maestra-{self.id}"


@dataclass
class SendResult:
    outcome: Outcome
    reason: str = ""
    provider_id: str = ""
    response_status: int | None = None
    response_body: str = ""
    # Seconds the provider asked us to wait (Retry-After), if it said.
    retry_after: float | None = None
    extra: dict = field(default_factory=dict)


class Backend:
    # A message whose worker died inside the provider call may or may not have
    # reached the provider. By default it then fails with `unknown_outcome`
    # and is never sent again: a lost message beats a duplicate. A backend
    # whose provider honours the idempotency key (Outgoing.idempotency_key,
    # the Message-ID for email) and drops a second request with the same key
    # may set this to True: such a message is then queued again, with the
    # same key, while it has retries left (channels.delivery.expire_leases).
    resends_unknown_outcome: bool = False
    # How many messages the worker hands to send_many at once, all marked
    # `sending` together: what a crash of the worker may leave with an unknown
    # outcome. 1: one by one, the default.
    group_size: int = 1
    # How many single-message provider calls the backend runs at once
    # (start(): parallel SMTP sessions). Above 1 the worker streams a chunk
    # through them: each session has one message `sending` at a time, and
    # a session that finishes gets the next one (channels/sending.py).
    sessions: int = 1

    def __init__(self, *, channel: str) -> None:
        self.channel = channel

    def send(self, message: Outgoing) -> SendResult:
        raise NotImplementedError

    def send_many(self, messages: list[Outgoing]) -> list[SendResult]:
        """One result per message, in order. By default one send() after the
        other, each isolated from the others' exceptions."""
        return [send_one(message, backend=self) for message in messages]

    def start(self, message: Outgoing) -> Future:
        """For `sessions` > 1: begin sending `message` on a free session; the
        future's result is its SendResult. The worker never has more than
        `sessions` messages started and unfinished."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections at the end of a delivery round."""


class BackendMisconfigured(Exception):
    """Settings do not allow this backend to send (no URL, no VAPID key...)."""


def unknown_outcome_result(exc: BaseException) -> SendResult:
    """A backend raised: the request may have left already, so the outcome is
    unknown, and an unknown outcome is never retried."""
    return SendResult(outcome=Outcome.FAILED, reason=f"{UNKNOWN_OUTCOME}: {type(exc).__name__}: {exc}"[:300])


def send_one(message: Outgoing, *, backend: Backend) -> SendResult:
    """One provider call, for the worker and for a test send."""
    try:
        return backend.send(message)
    except Exception as exc:
        logger.exception("the %s backend raised on message %s", message.channel, message.id)
        return unknown_outcome_result(exc)


def backend_class(channel: str) -> type[Backend]:
    path = settings.MAESTRA_CHANNEL_BACKENDS.get(channel)
    if not path:
        raise BackendMisconfigured(f"MAESTRA_CHANNEL_BACKENDS has no backend for {channel!r}")
    try:
        return import_string(path)
    except ImportError as exc:
        raise BackendMisconfigured(f"cannot import {path}: {exc}") from None


def get_backend(channel: str) -> Backend:
    return backend_class(channel)(channel=channel)


def channels_resending_unknown_outcomes() -> list[str]:
    """The channels whose configured backend opts in to re-sending unknown
    outcomes (Backend.resends_unknown_outcome); a backend that cannot be
    imported does not."""
    chosen = []
    for channel in settings.MAESTRA_CHANNEL_BACKENDS:
        try:
            cls = backend_class(channel)
        except BackendMisconfigured:
            continue
        if getattr(cls, "resends_unknown_outcome", False):
            chosen.append(channel)
    return chosen


# --- HTTP helpers shared by the HTTP backends -------------------------------


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: str
    headers: httpx.Headers


def http_request(
    client: httpx.Client,
    *,
    method: str,
    url: str,
    headers: dict,
    content: bytes | None,
    limit: int = RESPONSE_BODY_LIMIT,
) -> HttpAnswer:
    """Send one request and read at most `limit` bytes of the answer
    (RESPONSE_BODY_LIMIT; more for a batch's per-item answers): a provider
    (or a hostile endpoint) cannot make us buffer more."""
    with client.stream(method, url, headers=headers, content=content) as response:
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
        body = b"".join(chunks)[:limit].decode("utf-8", errors="replace")
        return HttpAnswer(status=response.status_code, body=body, headers=response.headers)


def classify_status(answer: HttpAnswer, *, provider_id: str = "") -> SendResult:
    """2xx sent; 408, 429 and 5xx retried; any other answer failed at once
    (a redirect included: it is not followed)."""
    common = {"response_status": answer.status, "response_body": answer.body}
    if 200 <= answer.status < 300:
        return SendResult(outcome=Outcome.SENT, provider_id=provider_id, **common)
    reason = f"http_{answer.status}"
    if answer.status in (408, 429) or answer.status >= 500:
        return SendResult(
            outcome=Outcome.RETRY,
            reason=reason,
            retry_after=parse_retry_after(answer.headers.get("retry-after")),
            **common,
        )
    return SendResult(outcome=Outcome.FAILED, reason=reason, **common)


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - timezone.now()).total_seconds())


def transport_error_result(exc: Exception) -> SendResult:
    """An exception from the HTTP client as a result: refused destinations and
    malformed requests fail at once; timeouts and network errors are retried."""
    if isinstance(exc, DestinationNotAllowed):
        return SendResult(outcome=Outcome.FAILED, reason=f"destination_not_allowed: {exc}")
    if isinstance(exc, httpx.TimeoutException):
        return SendResult(outcome=Outcome.RETRY, reason=f"timeout: {type(exc).__name__}")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError | httpx.InvalidURL):
        return SendResult(outcome=Outcome.FAILED, reason=f"invalid_request: {exc}")
    if isinstance(exc, httpx.TransportError):
        return SendResult(outcome=Outcome.RETRY, reason=f"connection_error: {exc}")
    raise exc


def combine(results: list[SendResult]) -> SendResult:
    """One row, several devices: sent if any device took it (retrying would
    send the others a copy), else retried if any failure was transient, else
    failed. The per-device results go to the response body."""
    if not results:
        return SendResult(outcome=Outcome.FAILED, reason="no_token")
    if len(results) == 1:
        return results[0]
    summary = "; ".join(
        f"{r.outcome}{' ' + r.reason if r.reason else ''}{' ' + r.provider_id if r.provider_id else ''}"
        for r in results
    )[:RESPONSE_BODY_LIMIT]
    sent = [r for r in results if r.outcome == Outcome.SENT]
    if sent:
        return SendResult(
            outcome=Outcome.SENT,
            provider_id=",".join(r.provider_id for r in sent if r.provider_id)[:200],
            response_status=sent[0].response_status,
            response_body=summary,
            extra={"devices": results},
        )
    retry = [r for r in results if r.outcome == Outcome.RETRY]
    chosen = retry[0] if retry else results[0]
    return SendResult(
        outcome=chosen.outcome,
        reason=chosen.reason,
        response_status=chosen.response_status,
        response_body=summary,
        retry_after=max((r.retry_after or 0 for r in retry), default=None) or None,
        extra={"devices": results},
    )
