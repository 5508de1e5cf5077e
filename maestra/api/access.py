"""Who may call which endpoint (SPEC §12, docs/api.md): one table, read by
one permission class (maestra.api.auth.HasAccess) and by the OpenAPI schema.

For each endpoint (its URL name in maestra/api/urls.py) and method:
- `scopes`: an API key needs at least one of them;
- `perms`: a staff user logged into the admin needs all of these Django
  model permissions — the same ones the admin asks for the same work, so
  the API never gives a role more than the admin does.

An endpoint or method missing from the table is refused to everybody: a new
endpoint is closed until it is listed here (tests/api/test_access.py checks
that every endpoint is).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from django.urls import URLPattern, URLResolver, get_resolver

from maestra.api.models import Scope


@dataclass(frozen=True)
class Access:
    scopes: tuple[str, ...]
    perms: tuple[str, ...]


def _rule(scopes: str | tuple[str, ...], *perms: str) -> Access:
    listed = (scopes,) if isinstance(scopes, str) else scopes
    return Access(scopes=tuple(str(scope) for scope in listed), perms=perms)


def _crud(app_model: str, *, read: tuple[str, ...], write: str) -> tuple[dict, dict]:
    """The collection and the detail of a building block keyed by slug."""
    app, model = app_model.split(".")
    collection = {
        "GET": _rule(read, f"{app}.view_{model}"),
        "POST": _rule(write, f"{app}.add_{model}"),
    }
    detail = {
        "GET": _rule(read, f"{app}.view_{model}"),
        "PUT": _rule(write, f"{app}.change_{model}"),
        "PATCH": _rule(write, f"{app}.change_{model}"),
        "DELETE": _rule(write, f"{app}.delete_{model}"),
    }
    return collection, detail


# Templates, segments and promo pools are the building blocks of flows: a key
# that reads flows may read them, and one that writes them may too.
_CONTENT_READ = (Scope.FLOWS_READ.value, Scope.CONTENT_WRITE.value)
_templates, _template = _crud("channels.template", read=_CONTENT_READ, write=Scope.CONTENT_WRITE)
_segments, _segment = _crud("customers.segment", read=_CONTENT_READ, write=Scope.CONTENT_WRITE)
_pools, _pool = _crud("customers.promopool", read=_CONTENT_READ, write=Scope.CONTENT_WRITE)

_FLOW_CHANGE = _rule(Scope.FLOWS_WRITE, "flows.change_flow")

ACCESS: dict[str, dict[str, Access]] = {
    "customer": {
        "GET": _rule(Scope.CUSTOMERS_READ, "customers.view_customer"),
        # An upsert: it may create the customer or change it.
        "PUT": _rule(Scope.CUSTOMERS_WRITE, "customers.add_customer", "customers.change_customer"),
    },
    "customer-activity": {"GET": _rule(Scope.CUSTOMERS_READ, "customers.view_customer", "flows.view_run")},
    "customer-erase": {"POST": _rule(Scope.PRIVACY, "customers.erase_customer")},
    "customer-export": {"GET": _rule(Scope.PRIVACY, "customers.export_customer")},
    # Events of unknown customers create them.
    "events": {"POST": _rule(Scope.EVENTS_WRITE, "customers.add_event", "customers.add_customer")},
    "flows": {
        "GET": _rule(Scope.FLOWS_READ, "flows.view_flow"),
        "POST": _rule(Scope.FLOWS_WRITE, "flows.add_flow"),
    },
    "flow": {"GET": _rule(Scope.FLOWS_READ, "flows.view_flow"), "PATCH": _FLOW_CHANGE},
    "flow-document": {"GET": _rule(Scope.FLOWS_READ, "flows.view_flow")},
    "flow-draft": {"PUT": _FLOW_CHANGE, "DELETE": _FLOW_CHANGE},
    "flow-launch": {"POST": _FLOW_CHANGE},
    "flow-test": {"POST": _FLOW_CHANGE},
    "flow-stop-test": {"POST": _FLOW_CHANGE},
    "flow-pause": {"POST": _FLOW_CHANGE},
    "flow-resume": {"POST": _FLOW_CHANGE},
    "flow-archive": {"POST": _FLOW_CHANGE},
    "flow-duplicate": {"POST": _rule(Scope.FLOWS_WRITE, "flows.view_flow", "flows.add_flow")},
    "flow-versions": {"GET": _rule(Scope.FLOWS_READ, "flows.view_flow")},
    "flow-stats": {"GET": _rule(Scope.FLOWS_READ, "flows.view_flow")},
    # Counts customers and can list some of them, as the admin's preview does.
    "flow-audience-preview": {"GET": _rule(Scope.FLOWS_READ, "flows.view_flow", "customers.view_customer")},
    "templates": _templates,
    "template": _template,
    # Renders for a customer and sends now: as in the admin.
    "template-send-test": {
        "POST": _rule(Scope.CONTENT_WRITE, "channels.change_template", "customers.view_customer")
    },
    "segments": _segments,
    "segment": _segment,
    "segment-members": {"POST": _rule(Scope.CONTENT_WRITE, "customers.add_segmentmembership")},
    "promo-pools": _pools,
    "promo-pool": _pool,
    "promo-codes": {"POST": _rule(Scope.CONTENT_WRITE, "customers.add_promocode")},
}


@cache
def _endpoint_names() -> dict[type, str]:
    """View class -> its URL name. A view is judged by what it is, not by the
    URL that reached it: the admin's audience page calls the API's view."""
    names: dict[type, str] = {}

    def walk(patterns) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns)
            elif isinstance(pattern, URLPattern) and pattern.name:
                view_class = getattr(pattern.callback, "view_class", None)
                if view_class is not None:
                    names.setdefault(view_class, pattern.name)

    walk(get_resolver().url_patterns)
    return names


def endpoint_name(view) -> str | None:
    return _endpoint_names().get(type(view))


def access_for(url_name: str | None, method: str) -> Access | None:
    """The rule of an endpoint's method; HEAD is GET. None: not listed."""
    method = "GET" if method.upper() == "HEAD" else method.upper()
    return ACCESS.get(url_name or "", {}).get(method)
