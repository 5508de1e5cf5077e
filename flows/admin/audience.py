"""Admin page: how many customers a flow's schedule start (or a rule) would
take now, with a sample of who. It shows exactly what the API's
audience-preview computes (one COUNT and one LIMIT 20 query in SQL), by
calling that view with the admin user's session."""

from __future__ import annotations

import json

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.template.response import TemplateResponse


def audience_preview_view(request, object_id, *, model_admin):
    from flows.api import FlowAudiencePreviewView

    flow = model_admin.get_object(request, object_id)
    if flow is None:
        raise Http404("No such flow")
    if not (
        model_admin.has_view_permission(request, flow) and request.user.has_perm("customers.view_customer")
    ):
        raise PermissionDenied
    rule = (request.GET.get("rule") or "").strip()
    version = (request.GET.get("version") or "").strip()
    params = request.GET.copy()
    for name in list(params):
        if name not in ("rule", "version"):
            del params[name]
    if not rule:
        params.pop("rule", None)
    if not version:
        params.pop("version", None)
    params["sample"] = "true"
    original = request.GET
    request.GET = params
    try:
        response = FlowAudiencePreviewView.as_view()(request, flow_id=flow.pk)
    finally:
        request.GET = original
    data = getattr(response, "data", {}) or {}
    ok = response.status_code == 200
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "original": flow,
        "title": f"Audience of {flow.name}",
        "subtitle": None,
        "rule": rule,
        "version": version,
        "preview": data if ok else None,
        "errors": [] if ok else data.get("errors", []),
        "rule_example": json.dumps({"field": "customer.fields.tier", "op": "eq", "value": "gold"}),
    }
    return TemplateResponse(request, "admin/flows/flow/audience.html", context)
