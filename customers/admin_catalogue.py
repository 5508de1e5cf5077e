"""The rule builder's data endpoint and the form widget that mounts the
builder (customers/static/customers/rule-builder.js) on a rule's JSON field.

GET <admin>/customers/customer/rule-catalogue/ answers JSON: the catalogue of
customers/catalogue.py plus the builder's words, translated by Django. Staff
with the permission to view customers only; anyone else gets a JSON 401/403,
never a login page the script could not read."""

from __future__ import annotations

from django import forms
from django.http import JsonResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from customers.catalogue import rule_catalogue

CATALOGUE_PERMISSION = "customers.view_customer"


def builder_strings() -> dict[str, str]:
    """The builder's words ({name}s are filled in by the script)."""
    return {
        "all": _("all of"),
        "any": _("any of"),
        "match": _("Match"),
        "not": _("not"),
        "negate": _("Negate (NOT)"),
        "add_condition": _("Add condition"),
        "add_event": _("Add event condition"),
        "add_group": _("Add group"),
        "remove": _("Remove"),
        "field": _("Field"),
        "other_path": _("Other path…"),
        "path": _("Path"),
        "operator": _("Operator"),
        "value": _("Value"),
        "values_hint": _("Several values: separate them with commas"),
        "event_type": _("Event type"),
        "has_done": _("Has done"),
        "times": _("Times"),
        "in_the_last": _("In the last"),
        "any_time": _("Any time"),
        "amount": _("Amount"),
        "unit": _("Unit"),
        "where": _("Where (the counted event)"),
        "add_where": _("Add a where"),
        "remove_where": _("Remove the where"),
        "advanced": _("Advanced: edit as JSON"),
        "back_to_builder": _("Back to the builder"),
        "json_invalid": _("This is not valid JSON."),
        "json_unsupported": _("The builder cannot show this rule; edit it as JSON."),
        "empty_rule": _("No condition yet: everyone matches."),
        "add_filter": _("Add a filter"),
        "remove_filter": _("Remove the filter"),
        "true": _("true"),
        "false": _("false"),
        "group_customer": _("Customer"),
        "group_fields": _("Custom fields"),
        "group_subscriptions": _("Subscriptions"),
        "group_loyalty": _("Points, segments and promo pools"),
        "group_event": _("Trigger event"),
        "choose": _("— choose —"),
        "loading": _("Loading the fields…"),
        "catalogue_failed": _("The field list could not be loaded; type paths by hand."),
        "unit_minutes": _("minutes"),
        "unit_hours": _("hours"),
        "unit_days": _("days"),
        "unit_weeks": _("weeks"),
        "unit_months": _("months"),
        "op_eq": _("is"),
        "op_ne": _("is not"),
        "op_gt": _("greater than"),
        "op_gte": _("at least"),
        "op_lt": _("less than"),
        "op_lte": _("at most"),
        "op_in": _("is one of"),
        "op_not_in": _("is none of"),
        "op_contains": _("contains"),
        "op_exists": _("has a value"),
        "op_not_exists": _("has no value"),
        "op_before": _("before"),
        "op_after": _("after"),
        "op_within_last": _("within the last"),
        "ev_count_gte": _("at least"),
        "ev_count_lte": _("at most"),
        "ev_count_eq": _("exactly"),
        "ev_exists": _("at least once"),
        "ev_not_exists": _("never"),
        "segment": _("Segment membership"),
        "points": _("Points balance"),
        "pool": _("Free codes in promo pool {slug}"),
        "subscription": _("Subscription: {channel}"),
    }


@never_cache
@require_GET
def rule_catalogue_view(request):
    user = request.user
    if not user.is_authenticated:
        return JsonResponse({"message": _("Log in to use the rule builder.")}, status=401)
    if not (user.is_active and user.is_staff and user.has_perm(CATALOGUE_PERMISSION)):
        return JsonResponse({"message": _("You may not do this.")}, status=403)
    return JsonResponse({**rule_catalogue(), "strings": builder_strings()})


class RuleBuilderWidget(forms.Textarea):
    """The rule's JSON textarea with the builder mounted over it: the builder
    writes the JSON, the textarea stays as the "advanced" view."""

    def __init__(self, *, allow_event: bool = False, attrs: dict | None = None):
        self.allow_event = allow_event
        super().__init__(attrs={"rows": 6, "cols": 80, **(attrs or {})})

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        context["widget"]["attrs"].update(
            {
                "data-rule-builder": "true",
                "data-allow-event": "true" if self.allow_event else "false",
                "data-rule-catalogue-url": reverse("admin:customers_rule_catalogue"),
            }
        )
        return context

    @property
    def media(self):
        return forms.Media(
            css={"all": ["customers/rule-builder.css"]},
            js=[forms.Script("customers/rule-builder-mount.js", type="module")],
        )
