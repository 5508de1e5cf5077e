"""Locales (BCP 47 language tags) of customers and of template translations.

One validator for both (SPEC §13 "Localised templates"): a language of 2-3
letters, an optional script (4 letters), an optional region (2 letters or 3
digits) and optional variants; e.g. `de`, `pt-BR`, `zh-Hant-TW`, `es-419`.
Tags are stored in their canonical case (language lower, script title,
region upper), so `pt-br` and `pt-BR` are the same locale."""

from __future__ import annotations

import re
from typing import Any

MAX_LENGTH = 35
_TAG = re.compile(
    r"^(?P<language>[A-Za-z]{2,3})"
    r"(?:-(?P<script>[A-Za-z]{4}))?"
    r"(?:-(?P<region>[A-Za-z]{2}|[0-9]{3}))?"
    r"(?P<variants>(?:-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*)$"
)


def normalize_locale(value: Any) -> str:
    """The canonical form of a BCP 47 tag ("" for None or ""); ValueError
    with a message a person can act on for anything else. `_` is read as
    `-` (pt_BR, as POSIX locales write it)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError("must be a string (a BCP 47 language tag such as de or pt-BR)")
    text = value.strip().replace("_", "-")
    if not text:
        return ""
    match = _TAG.match(text) if len(text) <= MAX_LENGTH else None
    if match is None:
        raise ValueError(f"{value[:40]!r} is not a BCP 47 language tag (e.g. de, pt-BR)")
    parts = [match["language"].lower()]
    if match["script"]:
        parts.append(match["script"].title())
    if match["region"]:
        parts.append(match["region"].upper())
    if match["variants"]:
        parts += [variant.lower() for variant in match["variants"].split("-") if variant]
    return "-".join(parts)


def language_of(locale: str) -> str:
    """`pt` of `pt-BR`."""
    return locale.partition("-")[0]
