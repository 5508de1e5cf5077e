"""Templates and the message outbox. Depends on `customers`, never on `flows`."""

import secrets

from django.db import models
from django.db.models import Q
from django.utils.timezone import now

from customers.models import Channel, Customer


def generate_webhook_secret() -> str:
    return secrets.token_urlsafe(32)


class Template(models.Model):
    class Purpose(models.TextChoices):
        MARKETING = "marketing", "Marketing (subscribers only)"
        SERVICE = "service", "Service (confirmations, receipts)"

    class Method(models.TextChoices):
        POST = "POST", "POST"
        PUT = "PUT", "PUT"
        PATCH = "PATCH", "PATCH"
        GET = "GET", "GET"

    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    channel = models.CharField(max_length=20, choices=Channel.choices)
    purpose = models.CharField(max_length=10, choices=Purpose.choices, default=Purpose.MARKETING)
    subject = models.CharField(max_length=300, blank=True, default="")
    text = models.TextField(blank=True, default="")
    html = models.TextField(blank=True, default="")
    # Email engagement tracking (channels/tracking.py): {"opens": bool,
    # "clicks": bool}; null = the purpose's default (marketing tracks both,
    # service neither).
    track = models.JSONField(null=True, blank=True)
    # {"de": {"subject", "text", "html"}, "pt-BR": {…}}: the text a customer
    # with that locale gets (channels/translations.py); {} = one language.
    translations = models.JSONField(default=dict, blank=True)
    # Webhook templates only.
    method = models.CharField(max_length=6, choices=Method.choices, default=Method.POST)
    url = models.CharField(max_length=1000, blank=True, default="")
    headers = models.JSONField(default=dict, blank=True)
    secret = models.CharField(max_length=100, default=generate_webhook_secret)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    def __str__(self) -> str:
        return self.slug


class Message(models.Model):
    """One row of the outbox: written by the engine inside its transaction,
    sent by the delivery worker after commit."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        # Taken by a delivery worker, not tried yet (channels/delivery.py).
        CLAIMED = "claimed", "Claimed"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        NOT_SENT = "not_sent", "Not sent"

    # Indexed by message_customer_idx (customer, created_at); no second index.
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="messages", db_index=False)
    template = models.ForeignKey(
        Template, on_delete=models.SET_NULL, null=True, blank=True, related_name="messages"
    )
    template_slug = models.CharField(max_length=100)
    channel = models.CharField(max_length=20, choices=Channel.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    reason = models.CharField(max_length=300, blank=True, default="")
    # Where it came from. Plain integers: `channels` does not know about flows.
    flow_id = models.BigIntegerField(null=True, blank=True)
    run_id = models.BigIntegerField(null=True, blank=True)
    node_key = models.CharField(max_length=100, blank=True, default="")
    step_index = models.PositiveSmallIntegerField(default=0)
    pass_no = models.PositiveIntegerField(default=0)
    is_test = models.BooleanField(default=False)
    # The communication policy (channels/policy.py): a live message of a
    # marketing template (quiet hours and frequency caps apply), and the end
    # of its steps group's relevance (quiet hours never hold it past that).
    marketing = models.BooleanField(default=False, db_default=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    # The rendered message (subject/text/html, or body/url/headers for webhooks).
    rendered = models.JSONField(default=dict, blank=True)
    context = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=now)
    # While `claimed` or `sending`: the worker's lease. Past it, a claimed row
    # goes back to the queue; a sending row's outcome is unknown.
    lease_until = models.DateTimeField(null=True, blank=True)
    # The claim holding the row ("host:pid:random"): a worker only marks
    # `sending`, and records the outcome of, rows still under its own claim.
    claimed_by = models.CharField(max_length=100, blank=True, default="", db_default="")
    provider_id = models.CharField(max_length=200, blank=True, default="")
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=now)
    sent_at = models.DateTimeField(null=True, blank=True)
    # The first open and the first click of a link (channels/tracking.py):
    # set once, they make the unique opens and clicks of the statistics.
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # One message per (run, node, step, pass): a crash or a retry of the
            # engine can never write, and so never send, a message twice.
            models.UniqueConstraint(
                fields=["run_id", "node_key", "step_index", "pass_no"],
                condition=Q(run_id__isnull=False),
                name="message_once_per_step_pass",
            ),
        ]
        indexes = [
            # The delivery worker's claim: queued rows due now, oldest first
            # (the claim's whole ORDER BY, id included: with next_attempt_at
            # alone PostgreSQL sorts every due row to pick a chunk).
            models.Index(
                fields=["next_attempt_at", "id"],
                name="message_queued_idx",
                condition=Q(status="queued"),
            ),
            # The priority lane: service messages (and anything not
            # marketing) are claimed before marketing ones, however long the
            # marketing backlog (channels/delivery.py, docs/delivery.md).
            models.Index(
                fields=["next_attempt_at", "id"],
                name="message_service_queued_idx",
                condition=Q(status="queued", marketing=False),
            ),
            # The lease sweep: claims and sends whose worker is gone.
            models.Index(
                fields=["lease_until"],
                name="message_lease_idx",
                condition=Q(status__in=["claimed", "sending"]),
            ),
            models.Index(fields=["customer", "created_at"], name="message_customer_idx"),
            models.Index(fields=["flow_id", "status", "created_at"], name="message_flow_status_idx"),
            # The frequency cap's count: a customer's marketing messages sent
            # recently, or about to be (claimed, sending), per channel.
            models.Index(
                fields=["customer", "channel", "sent_at"],
                name="message_marketing_sent_idx",
                condition=Q(marketing=True, status__in=["sent", "sending", "claimed"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel}:{self.template_slug} to {self.customer_id} ({self.status})"


class RateBucket(models.Model):
    """A provider's send-rate token bucket (channels/ratelimit.py), shared by
    every delivery worker through the database when Redis is not configured."""

    # "channel:limit/period": a changed limit starts a fresh bucket.
    name = models.CharField(max_length=100, primary_key=True)
    tokens = models.FloatField()
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name}: {self.tokens:.2f}"
