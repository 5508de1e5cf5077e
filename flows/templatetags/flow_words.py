"""Template words of flows: `{{ run.stop_reason|stop_reason }}` shows a
stop reason in plain language with its code as the tooltip;
`{{ message.reason|message_reason }}` why a message was not sent, the same way;
`{{ step.settings|settings_words }}` a node's settings in words."""

from django import template
from django.utils.html import format_html

from flows.message_reasons import MESSAGE_REASONS, message_reason_text
from flows.plain_language import stop_reason_text
from flows.settings_words import settings_html

register = template.Library()


def _reason_html(reason: str | None, text) -> str:
    """A reason code in plain words (`text` of it), the code as the tooltip."""
    if not reason:
        return ""
    return format_html('<span class="stop-reason" title="{}">{}</span>', reason, text(reason))


@register.filter(name="stop_reason")
def stop_reason(reason: str | None) -> str:
    return _reason_html(reason, stop_reason_text)


@register.filter(name="settings_words")
def settings_words(settings) -> str:
    """A node's settings as labelled values and sentences (flows/settings_words.py)."""
    return settings_html(settings) if settings is not None else ""


@register.filter(name="message_reason")
def message_reason(reason: str | None) -> str:
    return _reason_html(reason, message_reason_text)


@register.filter(name="reason_words")
def reason_words(code: str | None) -> str:
    """A stop or message reason code as plain words (text only, for a datalist)."""
    return message_reason_text(code)


@register.simple_tag
def message_reason_codes() -> list[str]:
    """The message reason codes a marketer can filter by, beside the step reasons."""
    return ["not_subscribed", *MESSAGE_REASONS]
