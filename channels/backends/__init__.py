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

import enum
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.utils.module_loading import import_string

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

    def __init__(self, *, channel: str) -> None:
        self.channel = channel

    def send(self, message: Outgoing) -> SendResult:
        raise NotImplementedError

    def send_many(self, messages: list[Outgoing]) -> list[SendResult]:
        """One result per message, in order. By default one send() after the
        other, each isolated from the others' exceptions."""
        return [send_one(message, backend=self) for message in messages]

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
