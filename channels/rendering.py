"""Template rendering in a sandbox.

Templates are written by marketers in the admin and filled with data that
customers and integrations send us, so the engine is locked down:

- its own `django.template.Engine`: no loaders (no `{% include %}` or
  `{% extends %}` can read a file), no template libraries (`{% load %}` does
  not exist), and only an allow-list of builtin tags and filters: no `debug`
  (it dumps the context and the imported modules), `url`, `csrf_token`,
  `querystring`, and no filters that let a template allocate without bound
  (`ljust`/`rjust`/`center`/`floatformat` take a capped argument, `lorem`,
  `stringformat` and `pprint` are gone);
- a context of plain, read-only data (mapping proxies and tuples built from
  JSON-like values), never model instances, so there is no method to call, no
  `_meta`, no related manager and no settings to reach. Django already refuses
  variables that start with "_"; keys starting with "_" are dropped as well;
- HTML email bodies are autoescaped; subjects, text, SMS, push and webhook
  bodies are not (they are not HTML).
"""

from __future__ import annotations

import html as html_lib
import json
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from django.template import Context, Engine, Library, TemplateSyntaxError, defaultfilters, defaulttags
from django.utils.html import strip_tags

# One rendered field may not grow past this (a loop over a long list can).
MAX_RENDERED_CHARS = 1_000_000
# Widths and precisions a template may ask for in the capped filters.
MAX_FILTER_ARGUMENT = 200

SAFE_TAGS = [
    "autoescape",
    "comment",
    "cycle",
    "filter",
    "firstof",
    "for",
    "if",
    "ifchanged",
    "now",
    "regroup",
    "resetcycle",
    "spaceless",
    "templatetag",
    "verbatim",
    "widthratio",
    "with",
]
SAFE_FILTERS = [
    "add",
    "addslashes",
    "capfirst",
    "cut",
    "date",
    "default",
    "default_if_none",
    "dictsort",
    "dictsortreversed",
    "divisibleby",
    "escape",
    "escapejs",
    "escapeseq",
    "filesizeformat",
    "first",
    "force_escape",
    "get_digit",
    "iriencode",
    "join",
    "json_script",
    "last",
    "length",
    "linebreaks",
    "linebreaksbr",
    "linenumbers",
    "lower",
    "make_list",
    "phone2numeric",
    "pluralize",
    "random",
    "safe",
    "safeseq",
    "slice",
    "slugify",
    "striptags",
    "time",
    "timesince",
    "timeuntil",
    "title",
    "truncatechars",
    "truncatechars_html",
    "truncatewords",
    "truncatewords_html",
    "unordered_list",
    "upper",
    "urlencode",
    "urlize",
    "urlizetrunc",
    "wordcount",
    "wordwrap",
    "yesno",
]

# The engine's only builtin library (Engine imports it by this module's path).
register = Library()
for _name in SAFE_TAGS:
    register.tags[_name] = defaulttags.register.tags[_name]
for _name in SAFE_FILTERS:
    register.filters[_name] = defaultfilters.register.filters[_name]


def _capped(name: str):
    original = defaultfilters.register.filters[name]

    def capped(value, arg=None):
        try:
            number = int(arg) if arg is not None else 0
        except (TypeError, ValueError):
            number = 0
        if abs(number) > MAX_FILTER_ARGUMENT:
            raise RenderError(f"the {name} filter takes at most {MAX_FILTER_ARGUMENT}, not {arg}")
        return original(value) if arg is None else original(value, arg)

    capped.is_safe = getattr(original, "is_safe", False)
    return capped


for _name in ("ljust", "rjust", "center"):
    register.filter(_name, _capped(_name), is_safe=True)


@register.filter(name="floatformat", is_safe=True)
def _floatformat(value, arg=-1):
    digits = str(arg).rstrip("gu")
    if digits.lstrip("-").isdigit() and int(digits) > MAX_FILTER_ARGUMENT:
        raise RenderError(f"the floatformat filter takes at most {MAX_FILTER_ARGUMENT} digits")
    return defaultfilters.floatformat(value, arg)


def _plain(value: Any) -> Any:
    if isinstance(value, MappingProxyType | dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


@register.filter(name="json")
def _json_filter(value):
    """`{{ event|json }}`: the value as JSON, for webhook bodies and push data."""
    return json.dumps(_plain(value), ensure_ascii=False, default=str)


class RenderError(Exception):
    """A template cannot be compiled or rendered; the message says which field
    and why, in words a marketer can act on."""


@lru_cache(maxsize=2)
def _engine(autoescape: bool) -> Engine:
    engine = Engine(
        dirs=[],
        app_dirs=False,
        loaders=[],
        libraries={},
        builtins=[],
        autoescape=autoescape,
        debug=False,
        string_if_invalid="",
    )
    # Replace the default builtins (all of defaulttags/defaultfilters and
    # loader_tags) by the allow-listed library alone.
    engine.builtins = [__name__]
    engine.template_builtins = [register]
    return engine


@lru_cache(maxsize=512)
def _compile(source: str, autoescape: bool):
    """A compiled template, or the syntax error message (cached as well, so a
    broken template in a batch of thousands is parsed once)."""
    try:
        return _engine(autoescape).from_string(source)
    except TemplateSyntaxError as exc:
        return str(exc)
    except Exception as exc:  # a tag's own parser can raise anything
        return f"{type(exc).__name__}: {exc}"


def template_syntax_problem(source: str, *, html: bool = False) -> str | None:
    """The syntax error of a template source, or None (for validating on save)."""
    compiled = _compile(source, html) if source else None
    return compiled if isinstance(compiled, str) else None


def render_string(*, source: str, context: dict, field: str, html: bool = False) -> str:
    if not source:
        return ""
    return _render_frozen(source=source, frozen=freeze(context), field=field, html=html)


def _render_frozen(*, source: str, frozen: MappingProxyType, field: str, html: bool = False) -> str:
    """render_string with a context already frozen: a template's fields share
    one frozen context (freezing is a good part of the cost of a render)."""
    if not source:
        return ""
    compiled = _compile(source, html)
    if isinstance(compiled, str):
        raise RenderError(f"{field}: {compiled}")
    try:
        output = compiled.render(Context(frozen, autoescape=html))
    except RenderError as exc:
        raise RenderError(f"{field}: {exc}") from None
    except Exception as exc:
        raise RenderError(f"{field}: {type(exc).__name__}: {exc}") from None
    if len(output) > MAX_RENDERED_CHARS:
        raise RenderError(f"{field}: the rendered text is longer than {MAX_RENDERED_CHARS} characters")
    return output


def freeze(value: Any) -> Any:
    """JSON-like data → read-only mapping proxies and tuples. Anything else
    (a model instance, a function) becomes its string form, so a caller that
    slips one in cannot expose its attributes or methods."""
    if isinstance(value, dict | MappingProxyType):
        return MappingProxyType({str(k): freeze(v) for k, v in value.items() if not str(k).startswith("_")})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def customer_context(customer: Any) -> dict:
    """What a template may know about a customer, from a Customer instance or
    a values() dict with the same names."""

    def get(name: str, default: Any = "") -> Any:
        if isinstance(customer, dict):
            return customer.get(name, default)
        return getattr(customer, name, default)

    first, last = get("first_name") or "", get("last_name") or ""
    return {
        "external_id": get("external_id"),
        "email": get("email"),
        "phone": get("phone"),
        "first_name": first,
        "last_name": last,
        "full_name": f"{first} {last}".strip(),
        "timezone": get("timezone"),
        "fields": get("fields", None) or {},
    }


def build_context(*, customer: Any, extra: dict | None = None) -> dict:
    """The full template context: `customer`, then what the caller passed
    (`event`, `promo_code`, `flow`, …). The caller cannot replace `customer`."""
    context = {"event": {}, "promo_code": "", "flow": {}}
    context.update(extra or {})
    context["customer"] = customer_context(customer)
    return context


def _no_line_breaks(value: str, field: str) -> str:
    if "\r" in value or "\n" in value:
        raise RenderError(f"{field}: must be a single line")
    return value


def render_template(*, template: Any, context: dict) -> dict:
    """Render every field of a template for its channel.

    Returns, by channel:
    - email: {"subject", "text", "html"} (text falls back to the HTML without tags)
    - sms: {"text"}
    - mobile_push, web_push: {"title", "body", "data": {"url"?}} (title = the
      template's subject, body = its text, url = its url, for the click target)
    - webhook: {"method", "url", "headers", "body"}
    Raises RenderError naming the field and the problem."""
    channel = template.channel
    frozen = freeze(context)
    text = lambda field, source: _render_frozen(source=source, frozen=frozen, field=field)  # noqa: E731

    if channel == "email":
        subject = _no_line_breaks(text("subject", template.subject).strip(), "subject")
        html = _render_frozen(source=template.html, frozen=frozen, field="html", html=True)
        body = text("text", template.text)
        if not body.strip() and html.strip():
            body = html_lib.unescape(strip_tags(html)).strip()
        if not body.strip() and not html.strip():
            raise RenderError("text: the email has neither text nor HTML")
        return {"subject": subject, "text": body, "html": html}
    if channel == "sms":
        body = text("text", template.text).strip()
        if not body:
            raise RenderError("text: the SMS text is empty")
        return {"text": body}
    if channel in ("mobile_push", "web_push"):
        title = text("subject", template.subject).strip()
        body = text("text", template.text).strip()
        if not title and not body:
            raise RenderError("text: the push has neither a title (subject) nor a body (text)")
        data = {}
        url = text("url", template.url).strip()
        if url:
            data["url"] = url
        return {"title": title, "body": body, "data": data}
    if channel == "webhook":
        url = text("url", template.url).strip()
        if not url.startswith(("http://", "https://")):
            raise RenderError(f"url: a webhook needs an http:// or https:// URL, not {url[:100]!r}")
        _no_line_breaks(url, "url")
        headers = {}
        for name, source in (template.headers or {}).items():
            if not isinstance(source, str):
                raise RenderError(f"headers.{name}: must be text")
            headers[str(name)] = _no_line_breaks(text(f"headers.{name}", source).strip(), f"headers.{name}")
        return {
            "method": template.method or "POST",
            "url": url,
            "headers": headers,
            "body": text("text", template.text),
        }
    raise RenderError(f"channel: unknown channel {channel!r}")


# A stand-in for the parts of a context a preview has no real data for.
PREVIEW_EXTRA = {"event": {}, "promo_code": "PREVIEW-CODE", "flow": {"name": "Preview"}}


def preview(*, template: Any, customer: Any, context: dict | None = None) -> dict:
    """Render a template for one customer, for the admin's preview. Raises
    RenderError like a real send would."""
    extra = dict(context or PREVIEW_EXTRA)
    customer_id = customer.get("id") if isinstance(customer, dict) else getattr(customer, "pk", None)
    if customer_id and "links" not in extra:
        from channels.links import links_for  # links imports the URL conf's views

        extra["links"] = links_for(customer_id=customer_id, channel=template.channel)
    return render_template(template=template, context=build_context(customer=customer, extra=extra))
