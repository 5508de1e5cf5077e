"""Why a message was not sent or failed (Message.reason: "code" or "code:
detail"), in words for the monitoring and customer activity pages; the code
stays as the tooltip (flows/templatetags/flow_words.py). Codes the engine
shares with stop reasons (template_error, not_subscribed…) read as those
(flows/plain_language.py STOP_REASONS)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy

from flows.plain_language import STOP_REASONS

MESSAGE_REASONS = {
    "frequency_cap": gettext_lazy("The customer already got as many messages as the frequency cap allows."),
    "quiet_hours": gettext_lazy(
        "It was quiet hours, and the message was no longer relevant when they ended."
    ),
    "unsubscribed": gettext_lazy("The customer unsubscribed from the channel."),
    "no_address": gettext_lazy("The customer has no address for this channel."),
    "invalid_address": gettext_lazy("The customer's address for this channel is not valid."),
    "no_token": gettext_lazy("The customer has no device token for push messages."),
    "test_mode": gettext_lazy("A test run: the message was recorded, not sent."),
    "unknown_outcome": gettext_lazy(
        "The provider's answer was lost: the message may or may not have gone out."
    ),
    "backend_misconfigured": gettext_lazy("The channel's sending service is not set up correctly."),
    "provider_error": gettext_lazy("The provider refused the message."),
}


def message_reason_text(reason: str | None) -> str:
    """'frequency_cap' -> a sentence; 'provider_error: 550 …' keeps its
    detail in brackets; an unknown code stays as it is."""
    if not reason:
        return ""
    code, _sep, detail = reason.partition(":")
    text = MESSAGE_REASONS.get(code.strip()) or STOP_REASONS.get(code.strip())
    if text is None:
        return reason
    return f"{text} ({detail.strip()})" if detail.strip() else str(text)
