"""The common template rendered without Django's machinery.

Most message templates are literal text and plain variables
(`Hi {{ customer.first_name }}`). Django renders each of them through a
Context, two context managers, a FilterExpression and the lookup rules of
`Variable._resolve_lookup`; a batch of messages spends a good part of its CPU
there. `plain_parts` recognises such a template once (when it compiles) and
`render_plain` renders it straight from the frozen context
(channels/rendering.py `freeze`): text, then each variable's value, HTML-escaped
as Django escapes it when the template autoescapes.

It answers only where the result is certainly Django's own: every lookup
finds its key in a read-only mapping and the value is an exact `str`.
Anything else (a missing key, a number, a list index, a filter, a tag) makes
it answer None, and the caller renders with Django as before.
"""

from __future__ import annotations

import html
from types import MappingProxyType

from django.template.base import TextNode, Variable, VariableNode

# A template part: literal text (str) or a variable's lookups (tuple of keys).
Part = str | tuple[str, ...]

_MISSING = object()


def plain_parts(template) -> tuple[Part, ...] | None:
    """The parts of a compiled template made of text and unfiltered
    variables only, or None when it holds anything else."""
    parts: list[Part] = []
    for node in template.nodelist:
        if type(node) is TextNode:
            parts.append(node.s)
            continue
        if type(node) is not VariableNode:
            return None
        expression = node.filter_expression
        variable = expression.var
        if (
            expression.filters
            or not expression.is_var
            or type(variable) is not Variable
            or variable.lookups is None
            or variable.translate
            or variable.message_context
        ):
            return None
        parts.append(tuple(variable.lookups))
    return tuple(parts)


def render_plain(parts: tuple[Part, ...], frozen: MappingProxyType, autoescape: bool) -> str | None:
    """The template of `parts` rendered with `frozen` as Django renders it, or
    None when a value is not an exact str reached through mappings alone."""
    output = []
    for part in parts:
        if type(part) is str:
            output.append(part)
            continue
        value = frozen
        for key in part:
            if type(value) is not MappingProxyType:
                return None
            value = value.get(key, _MISSING)
        if type(value) is not str:
            return None
        # Django: conditional_escape → escape → html.escape(str(value)).
        output.append(html.escape(value) if autoescape else value)
    return "".join(output)
