"""Load a small demo: the subscription-confirmation flow of SPEC §11, live,
with its email templates, five customers, a segment, a promo pool and an
admin login.

    manage.py load_demo [--username admin] [--password admin]

Idempotent: what already exists is left as it is (a second run creates and
changes nothing), so it is safe to run on every start of a demo container.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils.text import slugify

from channels.models import Template
from customers.models import Customer, PromoPool, Segment, Subscription
from customers.services import CustomerServiceError, add_promo_codes, add_to_segment, upsert_customers
from flows.errors import LifecycleError
from flows.lifecycle.drafts import create_flow
from flows.lifecycle.launch import finish_launch, launch_flow
from flows.models import Flow

DEMO_DOCUMENT = Path(__file__).resolve().parents[2] / "demo" / "subscription_confirmation.json"

TEMPLATES = [
    {
        "slug": "confirm",
        "name": "Confirm your subscription",
        "subject": "Please confirm your subscription",
        "text": (
            "Hello {{ customer.first_name|default:'there' }},\n\n"
            "thank you for subscribing to our newsletter. Please confirm your subscription "
            "so we know it was you.\n"
        ),
        "html": (
            "<p>Hello {{ customer.first_name|default:'there' }},</p>"
            "<p>thank you for subscribing to our newsletter. Please confirm your subscription "
            "so we know it was you.</p>"
        ),
    },
    {
        "slug": "reminder",
        "name": "Confirmation reminder",
        "subject": "Reminder: please confirm your subscription",
        "text": (
            "Hello {{ customer.first_name|default:'there' }},\n\n"
            "we have not heard from you yet: please confirm your subscription to keep receiving our newsletter.\n"
        ),
        "html": (
            "<p>Hello {{ customer.first_name|default:'there' }},</p>"
            "<p>we have not heard from you yet: please confirm your subscription "
            "to keep receiving our newsletter.</p>"
        ),
    },
]

REQUIRES_CONFIRMATION = Subscription.Status.REQUIRES_CONFIRMATION
SUBSCRIBED = Subscription.Status.SUBSCRIBED
CUSTOMERS = [
    ("demo-1", "Anna", "Schmidt", "Europe/Berlin", SUBSCRIBED),
    ("demo-2", "Ben", "Okafor", "Europe/London", REQUIRES_CONFIRMATION),
    ("demo-3", "Chloé", "Martin", "Europe/Paris", SUBSCRIBED),
    ("demo-4", "Diego", "Fernández", "Europe/Madrid", REQUIRES_CONFIRMATION),
    ("demo-5", "Emma", "Rossi", "", SUBSCRIBED),
]

SEGMENT_SLUG = "newsletter"
POOL_SLUG = "welcome"
POOL_SIZE = 20


class Command(BaseCommand):
    help = (
        "Load the demo: the subscription-confirmation flow (launched), its email templates, "
        "5 customers, the 'newsletter' segment, the 'welcome' promo pool and an admin superuser. "
        "Running it again changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin", help="superuser to create if none exists (admin)")
        parser.add_argument("--password", default="admin", help="its password (admin)")

    def handle(self, *args, **options):
        document = json.loads(DEMO_DOCUMENT.read_text(encoding="utf-8"))
        # One transaction: a failure half-way leaves nothing behind, and the
        # next run starts from scratch.
        with transaction.atomic():
            user = self._superuser(options["username"], options["password"])
            self._templates()
            flow = self._flow(document, user)
            customer_ids = self._customers()
            self._segment(customer_ids)
            self._pool()
        self.stdout.write("")
        self.stdout.write(
            "Admin: run `manage.py runserver` and open http://127.0.0.1:8000/admin/ "
            f"(flow page: /admin/flows/flow/{flow.pk}/change/)."
        )
        self.stdout.write(
            "`manage.py flows_tick` processes what is due (the confirmation emails go to the console backend)."
        )

    def _say(self, line: str) -> None:
        self.stdout.write(line)

    # --- Steps ------------------------------------------------------------------

    def _superuser(self, username: str, password: str):
        User = get_user_model()
        existing = User.objects.filter(is_superuser=True, is_active=True).order_by("pk").first()
        if existing is not None:
            self._say(f"Superuser: {existing.get_username()!r} already exists (no new user created).")
            return existing
        if User.objects.filter(**{User.USERNAME_FIELD: username}).exists():
            raise CommandError(f"User {username!r} exists but is not a superuser; choose another --username")
        if not username or not password:
            raise CommandError("--username and --password must not be empty")
        user = User.objects.create_superuser(username=username, email="", password=password)
        self._say(f"Superuser: created {username!r} with password {password!r} (change it before real use).")
        return user

    def _templates(self) -> None:
        created = []
        for spec in TEMPLATES:
            _template, was_created = Template.objects.get_or_create(
                slug=spec["slug"],
                defaults={**spec, "channel": "email", "purpose": Template.Purpose.SERVICE},
            )
            if was_created:
                created.append(spec["slug"])
        existing = [spec["slug"] for spec in TEMPLATES if spec["slug"] not in created]
        self._say(
            "Email templates: "
            + ", ".join(
                [
                    *(f"created {slug!r}" for slug in created),
                    *(f"{slug!r} already exists" for slug in existing),
                ]
            )
            + "."
        )

    def _flow(self, document: dict, user) -> Flow:
        name = document["name"]
        flow = Flow.objects.filter(name=name).exclude(status=Flow.Status.ARCHIVED).order_by("pk").first()
        if flow is not None and flow.status not in (Flow.Status.READY, Flow.Status.LAUNCHING):
            self._say(f"Flow {name!r} (id {flow.pk}): already exists, {flow.get_status_display().lower()}.")
            return flow
        created = flow is None
        if created:
            flow = create_flow(document=document, user=user)
        try:
            if flow.status != Flow.Status.LAUNCHING:
                flow = launch_flow(flow=flow, user=user, enqueue=False)
        except LifecycleError as error:
            details = "; ".join(
                f"{e.get('node') or 'flow'}.{e.get('field')}: {e.get('message')}" for e in error.errors
            )
            raise CommandError(
                f"The demo flow cannot be launched: {error.message}. {details}".strip()
            ) from None
        # In process, so the demo is live without a running cluster.
        flow = finish_launch(flow_id=flow.pk, user_id=user.pk)
        if flow.status != Flow.Status.ACTIVE:
            raise CommandError(f"The demo flow's launch failed (status {flow.status})")
        what = "created and launched" if created else "launched"
        self._say(f"Flow {name!r} (id {flow.pk}): {what} as version {flow.live_version.number}.")
        return flow

    def _customers(self) -> list[int]:
        external_ids = [row[0] for row in CUSTOMERS]
        existing = set(
            Customer.objects.filter(external_id__in=external_ids).values_list("external_id", flat=True)
        )
        rows = [
            {
                "external_id": external_id,
                "email": f"{slugify(first)}.{slugify(last)}@example.com",
                "first_name": first,
                "last_name": last,
                "timezone": timezone,
                "subscriptions": {"email": status},
            }
            for external_id, first, last, timezone, status in CUSTOMERS
            if external_id not in existing
        ]
        # Existing demo customers are left alone: one may have confirmed since.
        if rows:
            try:
                upsert_customers(rows=rows)
            except CustomerServiceError as error:
                raise CommandError(f"The demo customers cannot be created: {error.message}") from None
        waiting = sum(1 for row in rows if row["subscriptions"]["email"] == REQUIRES_CONFIRMATION)
        self._say(
            f"Customers: {len(rows)} created ({waiting} awaiting email confirmation), {len(existing)} already there."
        )
        return list(Customer.objects.filter(external_id__in=external_ids).values_list("pk", flat=True))

    def _segment(self, customer_ids: list[int]) -> None:
        _segment, created = Segment.objects.get_or_create(
            slug=SEGMENT_SLUG, defaults={"name": "Newsletter", "kind": Segment.Kind.STATIC}
        )
        try:
            added = add_to_segment(slug=SEGMENT_SLUG, customer_ids=customer_ids)
        except CustomerServiceError as error:
            raise CommandError(f"The demo segment cannot be filled: {error.message}") from None
        state = "created" if created else "already exists"
        self._say(f"Segment {SEGMENT_SLUG!r}: {state}, {added} member(s) added.")

    def _pool(self) -> None:
        _pool, created = PromoPool.objects.get_or_create(slug=POOL_SLUG, defaults={"name": "Welcome codes"})
        if not created:
            self._say(f"Promo pool {POOL_SLUG!r}: already exists (no codes added).")
            return
        # Random, so demo codes cannot be guessed from one another.
        codes: set[str] = set()
        while len(codes) < POOL_SIZE:
            codes.add(f"WELCOME-{secrets.token_hex(4).upper()}")
        result = add_promo_codes(pool_slug=POOL_SLUG, codes=sorted(codes))
        self._say(f"Promo pool {POOL_SLUG!r}: created with {result['added']} codes.")
