"""Where a message goes: a customer's address on each channel.

`recipient` decides the destination when a message is queued (the outbox),
and send-test decides it the same way when the tester gives no address.
Phone numbers are read with `phonenumbers` (Google's libphonenumber data).
"""

from __future__ import annotations

import re

import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from customers.models import Channel
from customers.selectors import PROFILE_FIELDS

# What the outbox and send-test read of a customer (a values() row).
CUSTOMER_COLUMNS = ("id", *PROFILE_FIELDS, "fields", "push_tokens")

# Message.reason codes of a destination that cannot be used.
NO_ADDRESS = "no_address"
INVALID_ADDRESS = "invalid_address"
NO_TOKEN = "no_token"

_PHONE_NOISE = re.compile(r"[\s().\-]")
# Digits only (letters are not read as a vanity number), 6 to 15 of them (E.164).
_PHONE = re.compile(r"^\+?[0-9]{6,15}$")


def normalize_phone(phone: str) -> str | None:
    """A phone number as it is sent, or None when it cannot be a number.

    With a leading +: the E.164 form (`+49 (0)151 234-5678` → `+491512345678`),
    and None when the country code does not exist or the number has a length
    no number of that country has. Without one: the digits alone
    (`(030) 1234567` → `0301234567`), since no home region is configured to
    read a national number in."""
    compact = _PHONE_NOISE.sub("", phone or "")
    if not _PHONE.match(compact):
        return None
    if not compact.startswith("+"):
        return compact
    try:
        number = phonenumbers.parse(compact, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def usable_web_push_subscriptions(value) -> list[dict]:
    """The web push subscriptions that can be encrypted to: an http(s) endpoint
    and both keys."""
    usable = []
    for sub in value if isinstance(value, list) else []:
        if not isinstance(sub, dict):
            continue
        keys = sub.get("keys")
        endpoint = sub.get("endpoint")
        if (
            isinstance(endpoint, str)
            and endpoint.startswith(("https://", "http://"))
            and isinstance(keys, dict)
            and isinstance(keys.get("p256dh"), str)
            and isinstance(keys.get("auth"), str)
        ):
            usable.append({"endpoint": endpoint, "keys": {"p256dh": keys["p256dh"], "auth": keys["auth"]}})
    return usable


# validate_email's own patterns, compiled (Django keeps them lazy, behind a proxy).
_EMAIL_USER = re.compile(validate_email.user_regex.pattern, validate_email.user_regex.flags)


def email_is_valid(email: str, domains: dict[str, bool]) -> bool:
    """Django's validate_email verdict, the domain part judged once per
    distinct domain in `domains` (the caller's cache: one batch). The same
    steps as EmailValidator.__call__; tests/channels/test_addresses_email.py
    compares the two."""
    if not email or "@" not in email or len(email) > 320:
        return False
    user_part, domain_part = email.rsplit("@", 1)
    if not _EMAIL_USER.match(user_part):
        return False
    verdict = domains.get(domain_part)
    if verdict is None:
        verdict = domains[domain_part] = domain_part in validate_email.domain_allowlist or bool(
            validate_email.validate_domain_part(domain_part)
        )
    return verdict


def recipient(
    *, channel: str, customer: dict, domains: dict[str, bool] | None = None
) -> tuple[object | None, str]:
    """(where the message goes, "") or (None, reason). The destination is
    stored on the row, so a later change of address does not redirect a
    message already decided on. `domains`: the email domains already judged
    in this batch (see email_is_valid)."""
    if channel == Channel.EMAIL:
        email = (customer["email"] or "").strip()
        if not email:
            return None, NO_ADDRESS
        if not customer["email_valid"]:
            return None, INVALID_ADDRESS
        if domains is not None:
            return (email, "") if email_is_valid(email, domains) else (None, INVALID_ADDRESS)
        try:
            validate_email(email)
        except ValidationError:
            return None, INVALID_ADDRESS
        return email, ""
    if channel == Channel.SMS:
        if not (customer["phone"] or "").strip():
            return None, NO_ADDRESS
        phone = normalize_phone(customer["phone"])
        return (phone, "") if phone else (None, INVALID_ADDRESS)
    tokens = customer["push_tokens"] if isinstance(customer["push_tokens"], dict) else {}
    if channel == Channel.MOBILE_PUSH:
        raw = tokens.get("mobile_push")
        usable = [t for t in raw if isinstance(t, str) and t.strip()] if isinstance(raw, list) else []
        return (usable, "") if usable else (None, NO_TOKEN)
    if channel == Channel.WEB_PUSH:
        usable = usable_web_push_subscriptions(tokens.get("web_push"))
        return (usable, "") if usable else (None, NO_TOKEN)
    # A webhook goes to the integrator's system named in the template, not to
    # the person: it needs neither an address nor the person's consent.
    return "", ""
