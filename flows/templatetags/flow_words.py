"""Template words of flows: `{{ run.stop_reason|stop_reason }}` shows a
stop reason in plain language with its code as the tooltip."""

from django import template
from django.utils.html import format_html

from flows.plain_language import stop_reason_text

register = template.Library()


@register.filter(name="stop_reason")
def stop_reason(reason: str | None) -> str:
    if not reason:
        return ""
    return format_html('<span class="stop-reason" title="{}">{}</span>', reason, stop_reason_text(reason))
