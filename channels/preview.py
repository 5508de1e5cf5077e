"""A template rendered for one customer, as a send would render it: the
admin's preview and a test send (channels/sendtest.py)."""

from __future__ import annotations

from typing import Any

from channels.links import links_for
from channels.rendering import PREVIEW_EXTRA, build_context, render_template
from channels.translations import localized


def preview(*, template: Any, customer: Any, context: dict | None = None, locale: str | None = None) -> dict:
    """Render `template` for `customer` (a Customer, a values() row, or
    rendering.SAMPLE_CUSTOMER); `context` replaces the stand-in event, promo
    code and flow. A real customer gets real confirm/unsubscribe links.
    The translation is the one of `locale` when given ("" for the default
    text), else the customer's (channels/translations.py).
    Raises RenderError like a real send would."""
    extra = dict(context or PREVIEW_EXTRA)
    is_row = isinstance(customer, dict)
    customer_id = customer.get("id") if is_row else getattr(customer, "pk", None)
    if customer_id and "links" not in extra:
        extra["links"] = links_for(customer_id=customer_id, channel=template.channel)
    if locale is None:
        locale = customer.get("locale") if is_row else getattr(customer, "locale", "")
    template, _key = localized(template, locale)
    return render_template(template=template, context=build_context(customer=customer, extra=extra))
