"""Everything we know about a person: profile, subscriptions, segments, events,
points and promo codes. This app never imports `flows` or `channels`."""

from django.db import models
from django.db.models import Q
from django.utils.timezone import now


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    MOBILE_PUSH = "mobile_push", "Mobile push"
    WEB_PUSH = "web_push", "Web push"
    WEBHOOK = "webhook", "Webhook"


class Customer(models.Model):
    external_id = models.CharField(max_length=200, unique=True)
    email = models.EmailField(blank=True, default="")
    # False after a hard bounce: the address exists on the profile but is not used.
    email_valid = models.BooleanField(default=True)
    phone = models.CharField(max_length=32, blank=True, default="")
    first_name = models.CharField(max_length=150, blank=True, default="")
    last_name = models.CharField(max_length=150, blank=True, default="")
    # IANA name; empty means "use the flow's time zone".
    timezone = models.CharField(max_length=64, blank=True, default="")
    # BCP 47 language tag in canonical case (customers/locales.py); empty:
    # templates send their default text.
    locale = models.CharField(max_length=35, blank=True, default="", db_default="")
    fields = models.JSONField(default=dict, blank=True)
    # Device tokens / web push subscriptions, keyed by channel.
    push_tokens = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=now, db_index=True)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        indexes = [
            # Customer search in the admin and activity lookups.
            models.Index(fields=["email"], name="customer_email_idx"),
            models.Index(fields=["phone"], name="customer_phone_idx"),
        ]
        # Privacy work asks for its own permissions, in the admin and the API
        # alike: reading a profile is not exporting everything, and changing
        # one is not erasing it.
        permissions = [
            ("erase_customer", "Can erase a customer's personal data"),
            ("export_customer", "Can export everything stored about a customer"),
        ]

    def __str__(self) -> str:
        return self.external_id

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class Subscription(models.Model):
    class Status(models.TextChoices):
        SUBSCRIBED = "subscribed", "Subscribed"
        REQUIRES_CONFIRMATION = "requires_confirmation", "Requires confirmation"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="subscriptions")
    channel = models.CharField(max_length=20, choices=Channel.choices)
    status = models.CharField(max_length=24, choices=Status.choices)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "channel"], name="subscription_one_per_channel"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id}:{self.channel}={self.status}"


class Segment(models.Model):
    class Kind(models.TextChoices):
        STATIC = "static", "Static (explicit members)"
        RULE = "rule", "Rule-based"

    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.STATIC)
    rule = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(kind="static") | Q(rule__isnull=False),
                name="segment_rule_kind_has_rule",
            ),
        ]

    def __str__(self) -> str:
        return self.slug


class SegmentMembership(models.Model):
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="memberships")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="segment_memberships")
    added_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["segment", "customer"], name="segment_membership_unique"),
        ]
        indexes = [
            # "Which static segments is this customer in" (rule language, profile API).
            models.Index(fields=["customer", "segment"], name="membership_customer_idx"),
        ]


class Event(models.Model):
    # External id from the integration; NULL for events the product emits itself.
    external_id = models.CharField(max_length=200, null=True, blank=True, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=100)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(default=now)
    payload = models.JSONField(default=dict, blank=True)
    # Length of the chain of emitted events that led here (0 = from outside).
    depth = models.PositiveSmallIntegerField(default=0)
    # Set once the engine has matched the event against the active flows.
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The engine's sweep: "events not yet matched against flows",
            # claimed oldest id first (flows/nodes/event.py), so in id order:
            # a claim reads its first rows instead of sorting the backlog.
            models.Index(
                fields=["id"],
                name="event_unprocessed_idx",
                condition=Q(processed_at__isnull=True),
            ),
            models.Index(fields=["customer", "type", "occurred_at"], name="event_customer_type_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} for {self.customer_id}"


class PointsEntry(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="points_entries")
    amount = models.IntegerField()
    reason = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=now)
    expires_at = models.DateTimeField(null=True, blank=True)
    # Makes a grant from a flow step idempotent: "run:node:step:pass".
    source_key = models.CharField(max_length=200, null=True, blank=True, unique=True)

    class Meta:
        verbose_name_plural = "points entries"
        indexes = [models.Index(fields=["customer", "expires_at"], name="points_customer_idx")]


class PromoPool(models.Model):
    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    # Alert when fewer codes than this remain (None: no alert).
    alert_below = models.PositiveIntegerField(null=True, blank=True)
    # Set once the "running low" alert went out; cleared when codes are back
    # above alert_below, so each crossing alerts once (flows/alerts.py).
    alerted = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=now)

    def __str__(self) -> str:
        return self.slug


class PromoCode(models.Model):
    pool = models.ForeignKey(PromoPool, on_delete=models.CASCADE, related_name="codes")
    code = models.CharField(max_length=100)
    customer = models.ForeignKey(
        Customer, on_delete=models.SET_NULL, null=True, blank=True, related_name="promo_codes"
    )
    issued_at = models.DateTimeField(null=True, blank=True)
    # The step that issued it ("run:node:step:pass"): issuing twice is impossible.
    issue_key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["pool", "code"], name="promo_code_unique_in_pool"),
        ]
        indexes = [
            # Issuing claims the next free code of a pool; counting free codes.
            models.Index(
                fields=["pool", "id"], name="promo_code_free_idx", condition=Q(issued_at__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return self.code
