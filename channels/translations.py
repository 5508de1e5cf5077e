"""Localised templates (SPEC §13): a template's `translations` and which
one a message uses.

`translations` is {"de": {"subject", "text", "html"}, "pt-BR": {…}, …}, keyed
by BCP 47 tags in canonical case (customers.locales). A translation is the
whole text of that language: a key it leaves out is empty, never the
default language's (an email whose text part is German and whose HTML part
is English would be worse than either). A message for a customer uses the
translation of the exact locale, else the one of its language (`pt` for
`pt-BR`), else the template's own (default) subject, text and html.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from customers.locales import language_of, normalize_locale

PARTS = ("subject", "text", "html")


def translations_shape_problems(translations: Any) -> dict[str, str]:
    """The shape of `translations`, by field ("translations.de.subject"):
    an object of BCP 47 tags (canonical, no two spellings of one locale),
    each an object of text parts. The sources' syntax and render are checked
    with the template's own (channels.templates.template_problems)."""
    if translations is None:
        return {}
    if not isinstance(translations, Mapping):
        return {"translations": 'must be an object {"de": {"subject", "text", "html"}, …}'}
    problems: dict[str, str] = {}
    seen: dict[str, str] = {}
    for tag, parts in translations.items():
        field = f"translations.{tag}"
        try:
            locale = normalize_locale(tag)
        except ValueError as exc:
            problems[field] = str(exc)
            continue
        if not locale:
            problems[field] = "a translation needs a locale (e.g. de, pt-BR)"
        elif locale != tag:
            problems[field] = f"write the locale as {locale!r}"
        elif locale in seen:
            problems[field] = f"the same locale as {seen[locale]!r}"
        seen.setdefault(locale, tag)
        if not isinstance(parts, Mapping):
            problems[field] = 'must be an object {"subject", "text", "html"}'
            continue
        for key in parts:
            if key not in PARTS:
                problems[f"{field}.{key}"] = f"unknown part (one of {', '.join(PARTS)})"
    return problems


def translation_sources(translations: Any) -> list[tuple[str, list[tuple[str, Any, bool]]]]:
    """(locale, [(field, source, is_html), …]) of every translation of a
    well-shaped `translations`; a render renders one of them, so each is
    checked on a render budget of its own."""
    if not isinstance(translations, Mapping):
        return []
    return [
        (
            str(tag),
            [(f"translations.{tag}.{part}", parts.get(part) or "", part == "html") for part in PARTS],
        )
        for tag, parts in translations.items()
        if isinstance(parts, Mapping)
    ]


def pick_translation(translations: Any, locale: str | None) -> str:
    """The key of the translation a customer with `locale` gets: the exact
    locale, else its language; "" for the template's default text."""
    if not locale or not isinstance(translations, Mapping) or not translations:
        return ""
    try:
        locale = normalize_locale(locale)
    except ValueError:
        return ""
    if locale in translations:
        return locale
    language = language_of(locale)
    return language if language in translations else ""


def localized(template: Any, locale: str | None) -> tuple[Any, str]:
    """(the template to render for `locale`, the translation's key or "").
    The template itself when the default text applies; else a copy whose
    subject, text and html are the translation's (the stored row is never
    changed)."""
    key = pick_translation(getattr(template, "translations", None), locale)
    if not key:
        return template, ""
    parts = template.translations[key]
    translated = copy.copy(template)
    for part in PARTS:
        setattr(translated, part, parts.get(part) or "")
    return translated, key
