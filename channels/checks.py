"""System checks of channels' settings (Django's check framework): the
communication policy and the per-provider send rate limits. `manage.py check` lists every bad value; because
gunicorn and the django-q2 cluster never run the checks, ChannelsConfig.ready
also runs this one and stops the process on the first error."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error

from channels.policy import PolicyError, parse_frequency_caps, parse_quiet_hours, parse_timezone
from channels.ratelimit import RateLimitError, parse_rate_limits

# setting, its parser, the check id
POLICY_SETTINGS = (
    ("MAESTRA_QUIET_HOURS", parse_quiet_hours, "channels.E001"),
    ("MAESTRA_QUIET_HOURS_TIMEZONE", parse_timezone, "channels.E002"),
    ("MAESTRA_FREQUENCY_CAPS", parse_frequency_caps, "channels.E003"),
    ("MAESTRA_RATE_LIMITS", parse_rate_limits, "channels.E004"),
)


def check_policy(app_configs=None, **kwargs) -> list[Error]:
    errors = []
    for name, parse, check_id in POLICY_SETTINGS:
        value = getattr(settings, name, "")
        try:
            parse(value)
        except (PolicyError, RateLimitError) as exc:
            doc = (
                "docs/delivery.md, rate limits"
                if isinstance(exc, RateLimitError)
                else "docs/channels.md, quiet hours and caps"
            )
            errors.append(Error(f"{name}={value!r}: {exc}", hint=f"See {doc}.", id=check_id))
    return errors
