"""The customer activity page: search a customer, then their runs as a
timeline (nodes passed with the settings in force then, messages and their
status, the stop reason), read through flows/selectors/activity.py."""

from __future__ import annotations

import json

from django.contrib import admin
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from customers.models import Customer
from flows.admin.common import int_or_none, require
from flows.selectors.activity import customer_runs, describe_runs, search_customers

ACTIVITY_PAGE_SIZE = 20


def activity_view(request, customer_id: int | None = None, *, model_admin):
    """Search a customer; then their runs as a timeline: nodes passed with
    times and the settings in force then, messages and their status, the stop
    reason."""
    require(request, "customers.view_customer", "flows.view_run")
    query = (request.GET.get("q") or "").strip()
    customer = None
    results: list[Customer] = []
    runs: list[dict] = []
    page = None
    if customer_id is not None:
        customer = Customer.objects.filter(pk=customer_id).first()
        if customer is None:
            raise Http404("No such customer")
    elif query:
        results = search_customers(query=query)
        if len(results) == 1:
            return HttpResponseRedirect(reverse("admin:flows_customer_activity", args=[results[0].pk]))
    flow_id = int_or_none(request.GET.get("flow"))
    if customer is not None:
        page = Paginator(
            customer_runs(customer_id=customer.pk, flow_id=flow_id), ACTIVITY_PAGE_SIZE
        ).get_page(request.GET.get("page"))
        runs = describe_runs(runs=list(page))
        for run in runs:
            for node in run["nodes"]:
                node["settings_text"] = (
                    json.dumps(node["settings"], indent=2, ensure_ascii=False)
                    if node["settings"] is not None
                    else ""
                )
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": f"Activity of {customer}" if customer else "Customer activity",
        "subtitle": None,
        "query": query,
        "results": results,
        "customer": customer,
        "runs": runs,
        "page": page,
        "flow_filter": flow_id,
        "customer_admin_url": (
            reverse("admin:customers_customer_change", args=[customer.pk])
            if customer is not None and admin.site.is_registered(Customer)
            else ""
        ),
    }
    return TemplateResponse(request, "admin/flows/activity.html", context)
