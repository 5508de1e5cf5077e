"""Provider events: bounces, complaints and SMS replies (docs/consent.md).

`POST /api/v1/inbound/provider-events`, authenticated by a shared secret
(settings.MAESTRA_INBOUND_SECRET in the header X-Maestra-Inbound-Secret), with
one generic JSON shape that a small adapter per provider can produce:

    {"events": [{"type": "bounce" | "complaint" | "sms_reply",
                 "message_id"?: "<maestra-812@shop.example>" | "812",
                 "email"?: "ann@example.com", "phone"?: "+49…",
                 "bounce_type"?: "hard" | "soft", "text"?: "STOP"}]}

- a hard bounce marks Customer.email_valid = False (the address is kept but
  no longer used); a soft bounce is only recorded on the message;
- a complaint (spam report) unsubscribes the customer from email;
- an SMS reply STOP (or STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT) unsubscribes
  the customer from SMS; other replies are ignored;
- the message, when known, records it: a hard bounce makes it `failed` with
  reason "bounced: hard", a soft bounce and a complaint keep its status and
  set the reason ("bounced: soft", "complained").

Unsubscriptions go through customers.services.set_subscriptions, so they emit
subscription_changed like any other change.
"""

from __future__ import annotations

import hmac
import operator
import re
from functools import reduce
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from channels.addresses import normalize_phone
from channels.models import Message
from customers.models import Customer, Subscription
from customers.services import set_subscriptions
from maestra.errors import ApplicationError, error

MAX_EVENTS = 1000
TYPES = ("bounce", "complaint", "sms_reply")
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
HEADER = "HTTP_X_MAESTRA_INBOUND_SECRET"
_MESSAGE_ID = re.compile(r"^<?(?:maestra-)?(\d+)(?:@[^>]*)?>?$")


class InvalidProviderEvents(ApplicationError):
    """The body does not have the documented shape (400); `errors` lists
    {index?, field, message} like the API's error contract."""

    def __init__(self, errors: list[dict]) -> None:
        super().__init__(errors[0]["message"], errors=errors)


def secret_ok(given: str | None) -> bool:
    expected = settings.MAESTRA_INBOUND_SECRET or ""
    # No secret configured: the endpoint is closed, never open to anyone.
    if not expected or not isinstance(given, str):
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def message_pk(value: Any) -> int | None:
    """The row id inside a Message-ID we sent (<maestra-812@domain>), or a bare id."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        match = _MESSAGE_ID.match(value.strip())
        if match:
            return int(match.group(1))
    return None


def validate(events: Any) -> list[dict]:
    """The events, or InvalidProviderEvents listing {index, field, message} for each problem."""
    if not isinstance(events, list):
        raise InvalidProviderEvents([error("must be a list", field="events")])
    if len(events) > MAX_EVENTS:
        raise InvalidProviderEvents([error(f"at most {MAX_EVENTS} events per request", field="events")])
    problems = []
    allowed = {"type", "message_id", "email", "phone", "bounce_type", "text"}
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            problems.append(error("must be an object", field="", index=index))
            continue
        for key in event:
            if key not in allowed:
                problems.append(error("unknown field", field=str(key), index=index))
        kind = event.get("type")
        if kind not in TYPES:
            problems.append(error(f"must be one of {', '.join(TYPES)}", field="type", index=index))
            continue
        for name in ("email", "phone", "text", "message_id"):
            if name in event and not isinstance(event[name], str | int if name == "message_id" else str):
                problems.append(error("must be a string", field=name, index=index))
        if kind == "bounce" and event.get("bounce_type") not in ("hard", "soft"):
            problems.append(error("must be hard or soft", field="bounce_type", index=index))
        if kind in ("bounce", "complaint") and not (event.get("message_id") or event.get("email")):
            problems.append(error("needs a message_id or an email", field="message_id", index=index))
        if kind == "sms_reply" and not (event.get("message_id") or event.get("phone")):
            problems.append(error("needs a message_id or a phone", field="phone", index=index))
    if problems:
        raise InvalidProviderEvents(problems)
    return events


def process_provider_events(*, events: list[dict]) -> dict[str, int]:
    """Apply validated events. Returns counts: bounced_hard, bounced_soft,
    complaints, sms_stops, ignored (nothing matched, or a reply that is not STOP)."""
    counts = {"bounced_hard": 0, "bounced_soft": 0, "complaints": 0, "sms_stops": 0, "ignored": 0}
    ids = {pk for e in events if (pk := message_pk(e.get("message_id"))) is not None}
    messages = dict(Message.objects.filter(id__in=ids).values_list("id", "customer_id")) if ids else {}
    emails = {e["email"].strip().lower() for e in events if e.get("email")}
    by_email: dict[str, list[int]] = {}
    if emails:
        any_of = reduce(operator.or_, (Q(email__iexact=address) for address in emails))
        for customer_id, address in Customer.objects.filter(any_of).values_list("id", "email"):
            by_email.setdefault(address.strip().lower(), []).append(customer_id)
    invalid_emails: set[int] = set()
    unsubscribe: dict[tuple[int, str], str] = {}
    message_updates: dict[int, tuple[str | None, str]] = {}

    for event in events:
        kind = event["type"]
        pk = message_pk(event.get("message_id"))
        customer_ids = [messages[pk]] if pk in messages else []
        if not customer_ids and kind in ("bounce", "complaint") and event.get("email"):
            customer_ids = by_email.get(event["email"].strip().lower(), [])
        if not customer_ids and kind == "sms_reply" and event.get("phone"):
            customer_ids = _customers_by_phone(event["phone"])
        if kind == "sms_reply" and (event.get("text") or "").strip().upper() not in STOP_WORDS:
            counts["ignored"] += 1
            continue
        if not customer_ids:
            counts["ignored"] += 1
            continue
        if kind == "bounce" and event["bounce_type"] == "hard":
            invalid_emails.update(customer_ids)
            counts["bounced_hard"] += 1
            if pk in messages:
                message_updates[pk] = (Message.Status.FAILED, "bounced: hard")
        elif kind == "bounce":
            counts["bounced_soft"] += 1
            if pk in messages:
                message_updates.setdefault(pk, (None, "bounced: soft"))
        elif kind == "complaint":
            counts["complaints"] += 1
            unsubscribe.update({(c, "email"): Subscription.Status.UNSUBSCRIBED for c in customer_ids})
            if pk in messages:
                message_updates[pk] = (None, "complained")
        else:
            counts["sms_stops"] += 1
            unsubscribe.update({(c, "sms"): Subscription.Status.UNSUBSCRIBED for c in customer_ids})

    with transaction.atomic():
        if invalid_emails:
            Customer.objects.filter(id__in=invalid_emails).update(email_valid=False)
        for pk, (status, reason) in message_updates.items():
            values = {"reason": reason}
            if status:
                values["status"] = status
            Message.objects.filter(id=pk).update(**values)
        changes = [(c, channel, status) for (c, channel), status in unsubscribe.items()]
        if changes:
            set_subscriptions(changes=changes, source="provider")
    return counts


def _customers_by_phone(phone: str) -> list[int]:
    wanted = normalize_phone(phone)
    if not wanted:
        return []
    digits = wanted.lstrip("+")
    candidates = Customer.objects.filter(phone__contains=digits[-4:]).values_list("id", "phone")[:1000]
    return [cid for cid, stored in candidates if (normalize_phone(stored) or "").lstrip("+") == digits]
