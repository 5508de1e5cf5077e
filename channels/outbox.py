"""Writing the outbox: one Message row per (run, node, step, pass).

`queue_messages` runs inside the engine's transaction and never sends: it
decides whether each message may go (consent, address), renders it, and writes
the rows in bulk. The delivery worker (channels/delivery.py) sends them after
the commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models.expressions import RawSQL
from django.utils import timezone

from channels import addresses
from channels.addresses import CUSTOMER_COLUMNS, recipient
from channels.links import links_for, template_uses_links
from channels.models import Message, Template
from channels.rendering import RENDER_ERROR, TEMPLATE_ERROR, RenderError, build_context, render_template
from channels.tracking import effective_track
from channels.translations import localized
from customers.models import Channel, Customer, Subscription
from maestra import sql
from maestra.wake import DELIVERY, wake

MessageKey = tuple[int, str, int, int]  # (run_id, node_key, step_index, pass_no)


class Reason:
    """Why a message was not sent or failed on the spot. `Message.reason` holds
    the code, followed by ": detail" where a detail helps."""

    NOT_SUBSCRIBED = "not_subscribed"
    UNSUBSCRIBED = "unsubscribed"
    NO_ADDRESS = addresses.NO_ADDRESS
    INVALID_ADDRESS = addresses.INVALID_ADDRESS
    NO_TOKEN = addresses.NO_TOKEN
    TEST_MODE = "test_mode"
    TEMPLATE_MISSING = "template_missing"
    TEMPLATE_CHANNEL_MISMATCH = "template_channel_mismatch"
    TEMPLATE_ERROR = TEMPLATE_ERROR  # the template does not compile or asks too much
    RENDER_ERROR = RENDER_ERROR  # this message's render failed (budget, data)
    CUSTOMER_MISSING = "customer_missing"


ON_THE_SPOT_REASONS = (
    Reason.TEMPLATE_MISSING,
    Reason.TEMPLATE_CHANNEL_MISMATCH,
    Reason.TEMPLATE_ERROR,
    Reason.RENDER_ERROR,
    Reason.CUSTOMER_MISSING,
)


@dataclass(frozen=True)
class SendRequest:
    customer_id: int
    template_slug: str
    channel: str
    run_id: int
    node_key: str
    step_index: int
    pass_no: int
    flow_id: int | None = None
    is_test: bool = False
    # JSON-like: "event" (the trigger's payload), "promo_code", "flow": {"name"}, …
    context: dict = field(default_factory=dict)
    # The end of the steps group's relevance: quiet hours never hold the
    # message past it (channels/policy.py).
    expires_at: datetime | None = None

    @property
    def key(self) -> MessageKey:
        return (self.run_id, self.node_key, self.step_index, self.pass_no)


@dataclass(frozen=True)
class QueuedMessage:
    """The outcome of one request. `id` is None only when no row could be
    written (the customer no longer exists). A re-processed request returns the
    row written the first time, with its current status."""

    id: int | None
    status: str
    reason: str = ""

    @property
    def failed_on_the_spot(self) -> bool:
        """True when the step could not even be attempted (no template, a
        template error, no customer): the engine treats that step as failed.
        Any other outcome, not_sent included, is an attempt."""
        return self.status == Message.Status.FAILED and self.reason.startswith(ON_THE_SPOT_REASONS)


def consent_problem(*, purpose: str, channel: str, status: str | None) -> str:
    """ "" when the template may go to a customer with this subscription status
    (None = no subscription row), else the reason."""
    if channel == Channel.WEBHOOK:
        return ""
    if status == Subscription.Status.UNSUBSCRIBED:
        return Reason.UNSUBSCRIBED
    if purpose == Template.Purpose.SERVICE:
        return ""
    return "" if status == Subscription.Status.SUBSCRIBED else Reason.NOT_SUBSCRIBED


def queue_messages(*, requests: list[SendRequest]) -> dict[MessageKey, QueuedMessage]:
    """Write one outbox row per request, in bulk, inside the caller's
    transaction; never sends. Four queries whatever the batch size (a fifth
    when some keys were written before). Rows already written for the same key
    are left as they are, so re-processing a batch writes nothing twice."""
    if not requests:
        return {}
    unique: dict[MessageKey, SendRequest] = {}
    for request in requests:
        unique.setdefault(request.key, request)

    templates = {
        t.slug: t for t in Template.objects.filter(slug__in={r.template_slug for r in unique.values()})
    }
    ids_sql, ids_params = sql.value_set({r.customer_id for r in unique.values()})
    customers = {
        row["id"]: row
        for row in Customer.objects.filter(id__in=RawSQL(ids_sql, ids_params)).values(*CUSTOMER_COLUMNS)
    }
    subscriptions = {
        (customer_id, channel): status
        for customer_id, channel, status in Subscription.objects.filter(
            customer_id__in=RawSQL(ids_sql, ids_params), channel__in={r.channel for r in unique.values()}
        ).values_list("customer_id", "channel", "status")
    }

    now = timezone.now()
    # Email domains already judged in this batch (a domain's verdict holds for every address).
    domains: dict[str, bool] = {}
    rows: list[dict] = []
    results: dict[MessageKey, QueuedMessage] = {}
    for key, request in unique.items():
        customer = customers.get(request.customer_id)
        if customer is None:
            results[key] = QueuedMessage(
                id=None, status=Message.Status.FAILED, reason=Reason.CUSTOMER_MISSING
            )
            continue
        template = templates.get(request.template_slug)
        status, reason, rendered = _decide(
            request=request,
            template=template,
            customer=customer,
            subscription=subscriptions.get((request.customer_id, request.channel)),
            domains=domains,
        )
        rows.append(
            {
                "customer_id": request.customer_id,
                "template_id": template.id if template else None,
                "template_slug": request.template_slug,
                "channel": request.channel,
                "status": status,
                "reason": reason[:300],
                "flow_id": request.flow_id,
                "run_id": request.run_id,
                "node_key": request.node_key,
                "step_index": request.step_index,
                "pass_no": request.pass_no,
                "is_test": request.is_test,
                # Counted by the cross-flow frequency cap (channels/policy.py).
                "marketing": bool(
                    template and template.purpose == Template.Purpose.MARKETING and not request.is_test
                ),
                "rendered": rendered,
                "context": request.context,
                # Quiet hours never hold the message past it (channels/policy.py).
                "expires_at": request.expires_at,
                "attempts": 0,
                "next_attempt_at": now,
                "provider_id": "",
                "response_body": "",
                "created_at": now,
            }
        )

    # One statement for the whole batch; a key written by an earlier pass (a
    # batch processed again after a crash) is skipped, never written twice.
    inserted = sql.insert_rows(
        Message._meta.db_table,
        columns=MESSAGE_COLUMNS,
        rows=rows,
        on_conflict=("run_id", "node_key", "step_index", "pass_no"),
        on_conflict_where="run_id IS NOT NULL",
        returning=("id", "run_id", "node_key", "step_index", "pass_no", "status", "reason"),
    )
    if any(row[5] == Message.Status.QUEUED for row in inserted):
        wake(DELIVERY)  # delivery starts once the engine's transaction commits
    for message_id, run_id, node_key, step_index, pass_no, status, reason in inserted:
        results[(run_id, node_key, step_index, pass_no)] = QueuedMessage(
            id=message_id, status=status, reason=reason
        )
    # Keys that were already there: read back what the first pass wrote.
    again = [key for key in unique if key not in results]
    if again:
        run_sql, run_params = sql.value_set({key[0] for key in again})
        written = Message.objects.filter(
            run_id__in=RawSQL(run_sql, run_params), node_key__in={key[1] for key in again}
        ).values_list("id", "run_id", "node_key", "step_index", "pass_no", "status", "reason")
        wanted = set(again)
        for message_id, run_id, node_key, step_index, pass_no, status, reason in written:
            key = (run_id, node_key, step_index, pass_no)
            if key in wanted:
                results[key] = QueuedMessage(id=message_id, status=status, reason=reason)
    return results


MESSAGE_COLUMNS = {
    "customer_id": "int",
    "template_id": "int",
    "template_slug": "text",
    "channel": "text",
    "status": "text",
    "reason": "text",
    "flow_id": "int",
    "run_id": "int",
    "node_key": "text",
    "step_index": "int",
    "pass_no": "int",
    "is_test": "bool",
    "marketing": "bool",
    "rendered": "json",
    "context": "json",
    "attempts": "int",
    "next_attempt_at": "ts",
    "provider_id": "text",
    "response_body": "text",
    "created_at": "ts",
    "expires_at": "ts",
}


def _decide(
    *,
    request: SendRequest,
    template: Template | None,
    customer: dict,
    subscription: str | None,
    domains: dict[str, bool] | None = None,
) -> tuple[str, str, dict]:
    """(status, reason, rendered) for one request."""
    if template is None:
        return Message.Status.FAILED, f"{Reason.TEMPLATE_MISSING}: no template {request.template_slug!r}", {}
    if template.channel != request.channel:
        return (
            Message.Status.FAILED,
            f"{Reason.TEMPLATE_CHANNEL_MISMATCH}: {request.template_slug!r} is a {template.channel} template",
            {},
        )
    verdict = consent_problem(purpose=template.purpose, channel=request.channel, status=subscription)
    to, address_problem = recipient(channel=request.channel, customer=customer, domains=domains)
    verdict = verdict or address_problem
    # A live message that may not go is not rendered at all: nothing would use it.
    if verdict and not request.is_test:
        return Message.Status.NOT_SENT, verdict, {}
    extra = request.context
    if template_uses_links(template):
        extra = {**extra, "links": links_for(customer_id=customer["id"], channel=request.channel)}
    try:
        rendered = render_template(
            template=localized(template, customer.get("locale"))[0],
            context=build_context(customer=customer, extra=extra),
        )
    except RenderError as exc:
        return Message.Status.FAILED, f"{exc.code}: {exc}", {}
    track = effective_track(track=template.track, purpose=template.purpose, channel=template.channel)
    if rendered.get("html") and any(track.values()):
        # Applied by the delivery worker, which knows the row's id (channels/tracking.py).
        rendered["track"] = track
    if request.is_test:
        # Rendered for the tester to read; what a live send would have done is
        # kept beside it ("would_send" or the reason it would not).
        rendered["test_verdict"] = verdict or "would_send"
        return Message.Status.NOT_SENT, Reason.TEST_MODE, rendered
    rendered["to"] = to
    return Message.Status.QUEUED, "", rendered
