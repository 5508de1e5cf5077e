"""Admin page: how many customers a flow's schedule start (or a rule) would
take now, with a sample of who. It asks the same selector as the API's
audience-preview (flows.selectors.audience.flow_audience_preview: one COUNT
and one LIMIT 20 query, by the rules of real entry), so both always agree."""

from __future__ import annotations

import json

from django.template.response import TemplateResponse
from django.utils import timezone

from flows.selectors.audience import flow_audience_preview
from maestra.admin_base import permitted_object
from maestra.api.errors import ApiError
from maestra.errors import ApplicationError


def audience_preview_view(request, object_id, *, model_admin):
    flow = permitted_object(
        model_admin, request, object_id, what="flow", permission="view", perms=["customers.view_customer"]
    )
    rule = (request.GET.get("rule") or "").strip()
    version = (request.GET.get("version") or "").strip()
    preview, errors = None, []
    try:
        preview = flow_audience_preview(
            flow=flow, now=timezone.now(), version=version or None, rule=rule or None, sample=True
        )
    except ApiError as refused:  # the rule is not JSON (the API's reader)
        errors = refused.errors
    except ApplicationError as refused:  # no such version, a bad rule, no audience to preview
        errors = refused.api_errors()
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "original": flow,
        "title": f"Audience of {flow.name}",
        "subtitle": None,
        "rule": rule,
        "version": version,
        "preview": preview,
        "errors": errors,
        "rule_example": json.dumps({"field": "customer.fields.tier", "op": "eq", "value": "gold"}),
    }
    return TemplateResponse(request, "admin/flows/flow/audience.html", context)
