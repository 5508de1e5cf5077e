"""A node's settings in words, for the customer activity page's "settings in
force" (issue #14, item 5: settings were shown as JSON). A node config is
shown as a list of labelled values: rules as sentences ("customer.fields.tier
is gold and has done order_created at least 2 times in the last 30 days"),
ISO 8601 durations as amounts ("3 days"), booleans as yes/no, lists of steps
or branches numbered, anything else as its text. Labels come from
flows.plain_language (the validation messages' field words), so a field
reads the same in both places. Pure formatting: no queries."""

from __future__ import annotations

import re
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from flows.plain_language import FIELD_LABELS

_DURATION = re.compile(
    r"^P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)


# Each unit's words, as literal calls so that makemessages finds them.
_UNITS = {
    "years": lambda n: ngettext("%(n)s year", "%(n)s years", n) % {"n": n},
    "months": lambda n: ngettext("%(n)s month", "%(n)s months", n) % {"n": n},
    "weeks": lambda n: ngettext("%(n)s week", "%(n)s weeks", n) % {"n": n},
    "days": lambda n: ngettext("%(n)s day", "%(n)s days", n) % {"n": n},
    "hours": lambda n: ngettext("%(n)s hour", "%(n)s hours", n) % {"n": n},
    "minutes": lambda n: ngettext("%(n)s minute", "%(n)s minutes", n) % {"n": n},
    "seconds": lambda n: ngettext("%(n)s second", "%(n)s seconds", n) % {"n": n},
}


def duration_words(text: str) -> str | None:
    """'P3D' -> '3 days', 'PT1H30M' -> '1 hour 30 minutes'; None when `text`
    is no simple ISO 8601 duration."""
    match = _DURATION.match(text) if isinstance(text, str) and len(text) > 1 else None
    if not match or not any(match.groupdict().values()):
        return None
    return " ".join(words(int(match.group(name))) for name, words in _UNITS.items() if match.group(name))


def _op_words() -> dict[str, str]:
    return {
        "eq": _("is"),
        "ne": _("is not"),
        "gt": _("is greater than"),
        "gte": _("is at least"),
        "lt": _("is less than"),
        "lte": _("is at most"),
        "in": _("is one of"),
        "not_in": _("is none of"),
        "contains": _("contains"),
        "exists": _("has a value"),
        "not_exists": _("has no value"),
        "before": _("is before"),
        "after": _("is after"),
        "within_last": _("is within the last"),
    }


def _value_words(value: Any) -> str:
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if value is None:
        return "—"
    if isinstance(value, str):
        return duration_words(value) or value
    if isinstance(value, list):
        return ", ".join(_value_words(item) for item in value)
    if isinstance(value, dict):
        return ", ".join(f"{_label(k)}: {_value_words(v)}" for k, v in value.items())
    return str(value)


def is_rule(value: Any) -> bool:
    if not isinstance(value, dict) or len(value) == 0:
        return False
    keys = set(value)
    return (
        keys <= {"field", "op", "value"}
        and "field" in keys
        or keys <= {"event", "op", "value", "within", "where"}
        and "event" in keys
        or len(keys) == 1
        and keys <= {"all", "any", "not"}
    )


def rule_words(rule: Any, *, nested: bool = False) -> str:
    """A rule of the rule language (customers/rules) as one sentence."""
    if not isinstance(rule, dict):
        return _value_words(rule)
    if "not" in rule and len(rule) == 1:
        return _("not (%(rule)s)") % {"rule": rule_words(rule["not"])}
    for comb, joiner in (("all", _(" and ")), ("any", _(" or "))):
        if comb in rule and len(rule) == 1:
            parts = [rule_words(child, nested=True) for child in rule[comb] or []]
            if not parts:
                return _("always") if comb == "all" else _("never")
            text = joiner.join(parts)
            return f"({text})" if nested and len(parts) > 1 else text
    if "event" in rule:
        return _event_words(rule)
    op = rule.get("op", "eq")
    text = f"{rule.get('field', '?')} {_op_words().get(op, op)}"
    if op not in ("exists", "not_exists"):
        text += f" {_value_words(rule.get('value'))}"
    return text


def _event_words(rule: dict) -> str:
    op = rule.get("op", "exists")
    counts = {
        "count_gte": _("at least %(n)s times"),
        "count_lte": _("at most %(n)s times"),
        "count_eq": _("exactly %(n)s times"),
    }
    if op == "not_exists":
        text = _("has never done %(event)s") % {"event": rule.get("event")}
    elif op in counts:
        text = _("has done %(event)s %(count)s") % {
            "event": rule.get("event"),
            "count": counts[op] % {"n": rule.get("value")},
        }
    else:
        text = _("has done %(event)s") % {"event": rule.get("event")}
    if rule.get("within"):
        text += " " + _("in the last %(period)s") % {"period": _value_words(rule["within"])}
    if rule.get("where"):
        text += " " + _("where %(rule)s") % {"rule": rule_words(rule["where"])}
    return text


def _label(key: str) -> str:
    label = FIELD_LABELS.get(key)
    text = str(label) if label is not None else key.replace("_", " ")
    return text[:1].upper() + text[1:]


def settings_html(settings: Any) -> SafeString:
    """The settings as nested <dl>/<ol> HTML, every value escaped."""
    if isinstance(settings, dict):
        if is_rule(settings):
            return format_html('<span class="settings-rule">{}</span>', rule_words(settings))
        return format_html(
            '<dl class="settings-words">{}</dl>',
            format_html_join(
                "",
                "<dt>{}</dt><dd>{}</dd>",
                ((_label(key), settings_html(value)) for key, value in settings.items()),
            ),
        )
    if isinstance(settings, list) and any(isinstance(item, dict | list) for item in settings):
        return format_html(
            '<ol class="settings-words">{}</ol>',
            format_html_join("", "<li>{}</li>", ((settings_html(item),) for item in settings)),
        )
    return format_html("{}", _value_words(settings))
