"""Admin for what we know about people. List pages annotate or join what they
show, so a page of 100 rows costs the same few queries as a page of one."""

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html

from customers.admin_catalogue import RuleBuilderWidget, rule_catalogue_view
from customers.errors import CustomerServiceError
from customers.locales import normalize_locale
from customers.models import (
    Customer,
    Event,
    PointsEntry,
    PromoCode,
    PromoPool,
    Segment,
    SegmentMembership,
    Subscription,
)
from customers.rules import validate_rule
from customers.services.events import CUSTOMER_CREATED, emit_events
from customers.services.points import points_balances
from customers.services.promo_codes import add_promo_codes
from customers.services.subscriptions import set_subscriptions
from maestra.admin_base import ReadOnlyAdminMixin


class NullFieldListFilter(admin.SimpleListFilter):
    """Yes/no filter on "is this timestamp set" (processed, issued, ...)."""

    field_name: str

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(**{f"{self.field_name}__isnull": False})
        if self.value() == "no":
            return queryset.filter(**{f"{self.field_name}__isnull": True})
        return queryset


class EmailSubscriptionFilter(admin.SimpleListFilter):
    title = "email subscription"
    parameter_name = "email_subscription"

    def lookups(self, request, model_admin):
        return Subscription.Status.choices

    def queryset(self, request, queryset):
        if self.value() in Subscription.Status.values:
            # One filter() call: (customer, channel) is unique, so no duplicates.
            return queryset.filter(subscriptions__channel="email", subscriptions__status=self.value())
        return queryset


class SubscriptionInlineForm(forms.ModelForm):
    class Meta:
        model = Subscription
        fields = ["channel", "status"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            # A row is one channel's status; another channel is another row.
            self.fields["channel"].disabled = True


class SubscriptionInline(admin.TabularInline):
    """Statuses are written by customers.services.subscriptions.set_subscriptions
    (see CustomerAdmin.save_formset), which emits subscription_changed like the
    API and audits the change as subscription.changed with the staff user."""

    model = Subscription
    form = SubscriptionInlineForm
    extra = 0
    can_delete = False  # "unsubscribed" is a status, not a missing row
    fields = ["channel", "status", "updated_at"]
    readonly_fields = ["updated_at"]


def activity_url(customer_id: int) -> str:
    """The customer's activity page. It lives in the flows admin (runs are
    flows' records); customers only knows its URL name, never its code."""
    try:
        return reverse("admin:flows_customer_activity", args=[customer_id])
    except NoReverseMatch:
        return ""


class CustomerForm(forms.ModelForm):
    """The locale checked and written in canonical case by the validator the
    API and the import use (customers.locales.normalize_locale)."""

    class Meta:
        model = Customer
        # The admin's fieldsets add the rest.
        fields = ["locale"]
        help_texts = {
            "locale": "BCP 47 language tag, e.g. de or pt-BR; empty: templates send their default text"
        }

    def clean_locale(self):
        try:
            return normalize_locale(self.cleaned_data.get("locale"))
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    form = CustomerForm
    list_display = ["external_id", "email", "phone", "name", "created_at", "activity"]
    list_filter = [EmailSubscriptionFilter, "email_valid", "created_at"]
    search_fields = ["external_id", "email", "phone", "first_name", "last_name"]
    ordering = ["-created_at"]
    # Counting millions of customers on every page view is the slow part of a
    # changelist; the paginator still counts the filtered result.
    show_full_result_count = False
    inlines = [SubscriptionInline]
    readonly_fields = ["created_at", "updated_at", "points_balance", "activity"]
    fieldsets = [
        (None, {"fields": ["external_id", ("first_name", "last_name"), ("timezone", "locale")]}),
        ("Contacts", {"fields": ["email", "email_valid", "phone", "push_tokens"]}),
        ("Data", {"fields": ["fields", "points_balance", "created_at", "updated_at", "activity"]}),
    ]

    def get_urls(self):
        # The rule builder's data (customers/admin_catalogue.py); JSON 401/403 itself.
        catalogue = path("rule-catalogue/", rule_catalogue_view, name="customers_rule_catalogue")
        return [catalogue, *super().get_urls()]

    @admin.display(description="activity")
    def activity(self, obj: Customer) -> str:
        url = activity_url(obj.pk) if obj.pk else ""
        return format_html('<a href="{}">runs and messages</a>', url) if url else "—"

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:
            # The product's own event, as for customers created by the API.
            emit_events(customer_ids=[obj.pk], event_type=CUSTOMER_CREATED, payload={}, depth=0)

    def save_formset(self, request, form, formset, change):
        if formset.model is not Subscription:
            return super().save_formset(request, form, formset, change)
        changes = [
            (form.instance.pk, sub_form.cleaned_data["channel"], sub_form.cleaned_data["status"])
            for sub_form in formset.forms
            if sub_form.has_changed() and sub_form.cleaned_data and not sub_form.cleaned_data.get("DELETE")
        ]
        # The inline's own rows are not saved: the service writes them and
        # emits subscription_changed for each real change.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        if changes:
            try:
                set_subscriptions(changes=changes, source="admin", user=request.user)
            except CustomerServiceError as error:
                self.message_user(request, error.message, messages.ERROR)

    @admin.display(description="name", ordering="last_name")
    def name(self, obj: Customer) -> str:
        return obj.full_name

    @admin.display(description="points balance")
    def points_balance(self, obj: Customer) -> int:
        if obj.pk is None:
            return 0
        return points_balances(customer_ids=[obj.pk])[obj.pk]


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Statuses are changed on the customer's page (through the service, which
    emits subscription_changed), never here."""

    list_display = ["customer", "channel", "status", "updated_at"]
    list_select_related = ["customer"]
    list_filter = ["channel", "status"]
    search_fields = ["customer__external_id", "customer__email"]
    raw_id_fields = ["customer"]
    show_full_result_count = False


class SegmentForm(forms.ModelForm):
    class Meta:
        model = Segment
        fields = ["slug", "name", "kind", "rule"]
        widgets = {"rule": RuleBuilderWidget()}  # the rule builder, JSON as "advanced"

    def clean(self):
        cleaned = super().clean()
        kind, rule = cleaned.get("kind"), cleaned.get("rule")
        if kind == Segment.Kind.RULE:
            if rule is None:
                self.add_error("rule", "A rule-based segment needs a rule.")
            else:
                # Segments are evaluated without a trigger event.
                problems = validate_rule(rule, allow_event=False)
                if problems:
                    self.add_error("rule", [f"{where or 'rule'}: {message}" for where, message in problems])
        elif kind == Segment.Kind.STATIC and rule is not None:
            self.add_error("rule", "A static segment has members, not a rule: leave it empty.")
        return cleaned


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    form = SegmentForm
    list_display = ["slug", "name", "kind", "member_count", "created_at"]
    list_filter = ["kind"]
    search_fields = ["slug", "name"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_member_count=Count("memberships"))

    @admin.display(description="members", ordering="_member_count")
    def member_count(self, obj: Segment) -> int | str:
        # Rule-based segments have no stored members: their size depends on now.
        if obj.kind == Segment.Kind.RULE:
            return "(rule)"
        return obj._member_count


class SegmentMembershipForm(forms.ModelForm):
    class Meta:
        model = SegmentMembership
        fields = ["segment", "customer"]

    def clean_segment(self):
        segment = self.cleaned_data["segment"]
        if segment.kind != Segment.Kind.STATIC:
            raise forms.ValidationError(
                "Only static segments have members; a rule-based one follows its rule."
            )
        return segment


@admin.register(SegmentMembership)
class SegmentMembershipAdmin(admin.ModelAdmin):
    """Members are added or removed, never moved to another segment."""

    form = SegmentMembershipForm
    fields = ["segment", "customer", "added_at"]
    readonly_fields = ["added_at"]
    list_display = ["segment", "customer", "added_at"]
    list_select_related = ["segment", "customer"]
    list_filter = ["segment"]
    search_fields = ["customer__external_id", "customer__email", "segment__slug"]
    raw_id_fields = ["customer"]
    show_full_result_count = False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class ProcessedFilter(NullFieldListFilter):
    title = "processed"
    parameter_name = "processed"
    field_name = "processed_at"


@admin.register(Event)
class EventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "customer", "type", "occurred_at", "received_at", "processed", "depth"]
    list_select_related = ["customer"]
    # No filter on `type`: its choices would be a SELECT DISTINCT over every event.
    list_filter = [ProcessedFilter]
    search_fields = ["=external_id", "customer__external_id", "type"]
    ordering = ["-id"]
    show_full_result_count = False

    @admin.display(description="processed", boolean=True, ordering="processed_at")
    def processed(self, obj: Event) -> bool:
        return obj.processed_at is not None


@admin.register(PointsEntry)
class PointsEntryAdmin(admin.ModelAdmin):
    """The points ledger: an adjustment is a new entry, never an edit of an old one."""

    list_display = ["id", "customer", "amount", "reason", "created_at", "expires_at"]
    list_select_related = ["customer"]
    list_filter = ["created_at"]
    search_fields = ["customer__external_id", "reason"]
    raw_id_fields = ["customer"]
    ordering = ["-id"]
    show_full_result_count = False
    fields = ["customer", "amount", "reason", "expires_at", "created_at", "source_key"]

    def get_readonly_fields(self, request, obj=None):
        return ["created_at", "source_key"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class PromoPoolForm(forms.ModelForm):
    add_codes = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text="Upload codes, one per line. Codes already in the pool are skipped.",
    )

    class Meta:
        model = PromoPool
        fields = ["slug", "name", "alert_below"]

    def clean_add_codes(self) -> list[str]:
        codes = [line.strip() for line in self.cleaned_data["add_codes"].splitlines() if line.strip()]
        too_long = [code for code in codes if len(code) > PromoCode._meta.get_field("code").max_length]
        if too_long:
            raise forms.ValidationError(f"Codes longer than 100 characters: {', '.join(too_long[:5])}")
        return codes


@admin.register(PromoPool)
class PromoPoolAdmin(admin.ModelAdmin):
    form = PromoPoolForm
    fields = ["slug", "name", "alert_below", "add_codes", "created_at"]
    list_display = ["slug", "name", "available", "issued", "alert_below", "created_at"]
    search_fields = ["slug", "name"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                _available=Count("codes", filter=Q(codes__issued_at__isnull=True)),
                _issued=Count("codes", filter=Q(codes__issued_at__isnull=False)),
            )
        )

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        codes = form.cleaned_data.get("add_codes") or []
        if not codes:
            return
        # Through the service: it skips codes already in the pool, in bulk.
        try:
            result = add_promo_codes(pool_slug=form.instance.slug, codes=codes)
        except CustomerServiceError as error:
            self.message_user(request, error.message, messages.ERROR)
            return
        self.message_user(
            request,
            f"{result['added']} code(s) added to {form.instance.slug}"
            + (
                f"; {result['duplicates']} skipped (already in the pool or repeated)."
                if result["duplicates"]
                else "."
            ),
        )

    @admin.display(description="available", ordering="_available")
    def available(self, obj: PromoPool) -> int:
        return obj._available

    @admin.display(description="issued", ordering="_issued")
    def issued(self, obj: PromoPool) -> int:
        return obj._issued


class IssuedFilter(NullFieldListFilter):
    title = "issued"
    parameter_name = "issued"
    field_name = "issued_at"


@admin.register(PromoCode)
class PromoCodeAdmin(admin.ModelAdmin):
    """Codes are uploaded, then issued by flows: an issued code is never edited by hand."""

    list_display = ["code", "pool", "customer", "issued_at", "created_at"]
    list_select_related = ["pool", "customer"]
    list_filter = [IssuedFilter, "pool"]
    search_fields = ["=code", "customer__external_id"]
    raw_id_fields = ["customer"]
    ordering = ["-id"]
    show_full_result_count = False

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["pool", "code"]
        return ["pool", "code", "customer", "issued_at", "issue_key", "created_at"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False
