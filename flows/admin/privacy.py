"""Erase / export actions on the customer list. They call flows/privacy.py,
which customers may not import, so flows/admin/__init__.py attaches them to
customers.admin.CustomerAdmin."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.http import HttpResponse
from django.template.response import TemplateResponse

from flows.privacy import erase_customers, export_customer

# One export is a handful of queries per customer: keep a selection bounded.
MAX_EXPORT = 100


def has_erase_permission(modeladmin, request) -> bool:
    return request.user.has_perm("customers.erase_customer")


def has_export_permission(modeladmin, request) -> bool:
    return request.user.has_perm("customers.export_customer")


# The same permissions as the API's erase and export (maestra/api/access.py).
@admin.action(
    description="Erase personal data of selected customers (cannot be undone)", permissions=["erase"]
)
def erase_selected_customers(modeladmin, request, queryset):
    if request.POST.get("confirm_erase") != "yes":
        context = {
            **modeladmin.admin_site.each_context(request),
            "title": "Erase personal data?",
            "opts": modeladmin.model._meta,
            "customers": list(queryset.order_by("pk")[:200]),
            "count": queryset.count(),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "selected": list(queryset.values_list("pk", flat=True)),
        }
        return TemplateResponse(request, "admin/customers/customer/erase_confirm.html", context)
    erased = erase_customers(customer_ids=list(queryset.values_list("pk", flat=True)), user=request.user)
    modeladmin.message_user(request, f"Erased the personal data of {erased} customer(s).", messages.SUCCESS)
    return None


@admin.action(description="Export data of selected customers as JSON", permissions=["export"])
def export_selected_customers(modeladmin, request, queryset):
    customers = list(queryset.order_by("pk")[: MAX_EXPORT + 1])
    if len(customers) > MAX_EXPORT:
        modeladmin.message_user(request, f"Export at most {MAX_EXPORT} customers at a time.", messages.ERROR)
        return None
    body = json.dumps([export_customer(customer=c) for c in customers], ensure_ascii=False, indent=2)
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="customers-export.json"'
    return response


def attach_to(customer_admin_class) -> None:
    actions = list(customer_admin_class.actions or [])
    for action in (export_selected_customers, erase_selected_customers):
        if action not in actions:
            actions.append(action)
    customer_admin_class.actions = actions
    customer_admin_class.has_erase_permission = has_erase_permission
    customer_admin_class.has_export_permission = has_export_permission
