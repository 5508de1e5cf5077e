"""Send a test: a template rendered for a chosen customer, sent now to that
customer's address or to a given one, directly through the channel's backend.

The row it writes is `is_test=True` with no run and no flow, so it never counts
as a launch nor appears in a flow's statistics; it ends `sent` or `failed`
(no retries: the person testing is waiting for the answer). It is an explicit
send by staff, so the customer's subscription status is not consulted: the
address is whatever the tester chose.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils import timezone

from channels.addresses import CUSTOMER_COLUMNS, normalize_phone, recipient
from channels.backends import Outcome, Outgoing, SendResult, get_backend
from channels.delivery import send_one
from channels.links import link_url
from channels.models import Message, Template
from channels.preview import preview
from channels.rendering import RenderError
from customers.models import Channel, Customer


class SendTestError(Exception):
    """The test cannot be sent as asked (bad address, no address); nothing
    was written. The message is meant for the person testing."""


def _destination(*, channel: str, customer: dict, to: str | None):
    if channel == Channel.WEBHOOK:
        return ""  # a webhook goes to the URL in the template
    if to is None or to == "":
        destination, problem = recipient(channel=channel, customer=customer)
        if problem:
            raise SendTestError(f"the customer has no usable {channel} destination ({problem}); give `to`")
        return destination
    if not isinstance(to, str):
        raise SendTestError("`to` must be a string")
    to = to.strip()
    if channel == Channel.EMAIL:
        try:
            validate_email(to)
        except ValidationError:
            raise SendTestError(f"{to!r} is not an email address") from None
        return to
    if channel == Channel.SMS:
        phone = normalize_phone(to)
        if not phone:
            raise SendTestError(f"{to!r} is not a phone number")
        return phone
    if channel == Channel.MOBILE_PUSH:
        return [to]
    # A web push subscription is a JSON object with keys, not an address.
    raise SendTestError("web push tests go to the customer's own subscriptions; leave `to` out")


def send_test(*, template: Template, customer: Customer, to: str | None = None) -> Message:
    """Render `template` for `customer` and send it now. Returns the Message
    row (status sent or failed, reason on failure). Raises SendTestError,
    writing nothing, when the destination is unusable."""
    row = Customer.objects.filter(pk=customer.pk).values(*CUSTOMER_COLUMNS).first()
    if row is None:
        raise SendTestError("the customer no longer exists")
    destination = _destination(channel=template.channel, customer=row, to=to)
    now = timezone.now()
    message = Message(
        customer_id=customer.pk,
        template=template,
        template_slug=template.slug,
        channel=template.channel,
        is_test=True,
        context={"send_test": True},
        created_at=now,
        next_attempt_at=now,
    )
    try:
        rendered = preview(template=template, customer=row)
    except RenderError as exc:
        message.status = Message.Status.FAILED
        message.reason = f"{exc.code}: {exc}"[:300]
        message.save()
        return message
    rendered["to"] = destination
    message.rendered = rendered
    message.status = Message.Status.SENDING
    message.attempts = 1
    # Should this process die mid-send, the lease sweep calls it unknown_outcome.
    message.lease_until = now + timedelta(seconds=settings.MAESTRA_DELIVERY_LEASE)
    message.save()

    outgoing_rendered = dict(rendered)
    if template.channel == Channel.EMAIL and template.purpose == Template.Purpose.MARKETING:
        outgoing_rendered["list_unsubscribe"] = link_url(
            customer_id=customer.pk, channel=Channel.EMAIL, action="unsubscribe"
        )
    result = _send(
        Outgoing(id=message.pk, channel=template.channel, rendered=outgoing_rendered, secret=template.secret)
    )
    message.lease_until = None
    message.response_status = result.response_status
    message.response_body = result.response_body[:4096]
    if result.outcome == Outcome.SENT:
        message.status, message.reason = Message.Status.SENT, ""
        message.provider_id, message.sent_at = result.provider_id[:200], timezone.now()
    else:
        message.status, message.reason = Message.Status.FAILED, result.reason[:300]
    message.save(
        update_fields=[
            "status",
            "reason",
            "lease_until",
            "response_status",
            "response_body",
            "provider_id",
            "sent_at",
        ]
    )
    return message


def _send(outgoing: Outgoing) -> SendResult:
    """Through a backend of its own, closed at once; a misconfigured backend
    fails the test (no retries: the tester is waiting)."""
    try:
        backend = get_backend(outgoing.channel)
    except Exception as exc:
        return SendResult(outcome=Outcome.FAILED, reason=f"backend_misconfigured: {exc}"[:300])
    try:
        return send_one(outgoing, backend=backend)
    finally:
        with contextlib.suppress(Exception):  # closing a broken connection: nothing left to do
            backend.close()
