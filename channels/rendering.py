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
  bodies are not (they are not HTML). What a render returns is plain `str`,
  never Django's SafeString: a page that shows it (the admin's preview)
  escapes it like any other untrusted text;
- a render has a budget (SPEC §12, `RenderBudget`): CPU time, characters of
  output and loop iterations, charged while the template runs (each loop
  iteration, each filter call), so a small template with nested loops fails
  within the budget instead of holding a worker; context data nested deeper
  than MAX_CONTEXT_DEPTH fails the render instead of exhausting the stack.

Errors are RenderError with a `code`: `template_error` when the template
itself must be fixed (it does not compile, a filter is asked for more than its
cap), `render_error` when this render failed (past the budget, data too deep,
an exception while rendering). `sample_render_problem` renders a template's
sources for a sample customer with the same compiler and budget: the check on
save (channels/templates.py) and the flow validation use it.
"""

from __future__ import annotations

import html as html_lib
import json
import time
from collections.abc import Mapping
from contextvars import ContextVar
from functools import lru_cache, wraps
from types import MappingProxyType
from typing import Any

from django.template import (
    Context,
    Engine,
    Library,
    Node,
    NodeList,
    TemplateSyntaxError,
    VariableDoesNotExist,
    defaultfilters,
    defaulttags,
)
from django.utils.html import strip_tags

from channels.render_allowlist import SAFE_FILTERS, SAFE_TAGS
from channels.render_fast import plain_parts, render_plain

# Widths and precisions a template may ask for in the capped filters.
MAX_FILTER_ARGUMENT = 200

# The render budget of one message (all its fields together) or one set_field
# value (SPEC §12). Past any of them the render fails with `render_error`.
RENDER_CPU_SECONDS = 1.0
MAX_RENDERED_CHARS = 1_000_000
MAX_LOOP_ITERATIONS = 100_000
# The API accepts 32 levels in an event payload or customer fields, which sit
# at most 3 levels down in the context; deeper data (rows stored before that
# bound) fails the render rather than the worker's stack.
MAX_CONTEXT_DEPTH = 40
_PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})

# RenderError codes (Message.reason and Run.stop_reason start with them).
TEMPLATE_ERROR = "template_error"
RENDER_ERROR = "render_error"

# The CPU clock the budget reads; tests replace it with one they advance.
cpu_clock = time.thread_time
# cpu_clock is a system call; a thread uses no more CPU than wall time passes,
# so this cheap clock says when to read it (a test's clock: every time).
wall_clock = time.monotonic


class RenderError(Exception):
    """A template cannot be compiled or rendered; the message says which field
    and why, in words a marketer can act on. `code`: TEMPLATE_ERROR (fix the
    template) or RENDER_ERROR (this render failed)."""

    def __init__(self, message: str, *, code: str = TEMPLATE_ERROR):
        super().__init__(message)
        self.code = code


class MissingValue(RenderError):
    """A value the template needs is not in the data (a filter argument such
    as `|ljust:event.width` without `width`): a render_error for this
    customer, not a fault of the template."""

    def __init__(self, message: str):
        super().__init__(message, code=RENDER_ERROR)


class RenderBudget:
    """What one render may still use, charged while the template runs: loop
    iterations when a loop starts (the whole loop at once, before it runs),
    output characters after each loop iteration and at the end of each field,
    CPU time at each of those and after each filter call. One budget covers
    every field of a message."""

    def __init__(self) -> None:
        self.deadline = cpu_clock() + RENDER_CPU_SECONDS
        self.unspent_until = wall_clock() + RENDER_CPU_SECONDS if cpu_clock is time.thread_time else 0.0
        self.iterations = 0
        self.chars = 0

    def check_time(self) -> None:
        if wall_clock() < self.unspent_until:
            return
        if cpu_clock() > self.deadline:
            raise RenderError(
                f"the render used more than its {RENDER_CPU_SECONDS:g} s of CPU time", code=RENDER_ERROR
            )

    def add_iterations(self, count: int) -> None:
        self.iterations += count
        if self.iterations > MAX_LOOP_ITERATIONS:
            raise RenderError(
                f"the loops would run more than {MAX_LOOP_ITERATIONS:,} times in all", code=RENDER_ERROR
            )
        self.check_time()

    def add_output(self, count: int) -> None:
        self.chars += max(count, 0)
        if self.chars > MAX_RENDERED_CHARS:
            raise RenderError(
                f"the rendered text is longer than {MAX_RENDERED_CHARS:,} characters", code=RENDER_ERROR
            )
        self.check_time()


# The budget of the render running in this thread (filters get no context).
_budget: ContextVar[RenderBudget] = ContextVar("maestra_render_budget")


def _charge_filter(result: Any) -> None:
    # A filter's result is not output yet, but `add` applied to its own result
    # in nested {% with %} doubles it each time: no value may outgrow the output.
    if isinstance(result, str | list | tuple) and len(result) > MAX_RENDERED_CHARS:
        raise RenderError(
            f"a filter produced a value longer than {MAX_RENDERED_CHARS:,} characters", code=RENDER_ERROR
        )
    _budget.get().check_time()


def _budgeted_filter(original):
    """`original` with its result charged to the budget; Django reads the
    argument count and the flags (is_safe, needs_autoescape, …) through
    functools.wraps."""

    @wraps(original)
    def budgeted(value, *args, **kwargs):
        result = original(value, *args, **kwargs)
        _charge_filter(result)
        return result

    return budgeted


class _MeteredSequence:
    """A for loop's sequence: resolving it charges the loop's iterations."""

    def __init__(self, sequence) -> None:
        self.sequence = sequence

    def resolve(self, context, ignore_failures: bool = False):
        values = self.sequence.resolve(context, ignore_failures=ignore_failures)
        if values is not None:
            if not hasattr(values, "__len__"):
                values = list(values)
            _budget.get().add_iterations(len(values))
        return values

    def __str__(self) -> str:
        return str(self.sequence)


class _LoopBody(Node):
    """A for loop's body: the output of each iteration is charged as it is
    produced. Nested loops charged theirs already; only the rest is added."""

    child_nodelists = ("nodelist",)

    def __init__(self, nodelist: NodeList) -> None:
        self.nodelist = nodelist

    def render(self, context) -> str:
        budget = _budget.get()
        before = budget.chars
        output = self.nodelist.render(context)
        budget.add_output(len(output) - (budget.chars - before))
        return output


# The engine's only builtin library (Engine imports it by this module's path).
register = Library()
for _name in SAFE_TAGS:
    register.tags[_name] = defaulttags.register.tags[_name]
for _name in SAFE_FILTERS:
    register.filters[_name] = _budgeted_filter(defaultfilters.register.filters[_name])


@register.tag("for")
def _for(parser, token):
    """Django's {% for %}, its iterations and output charged to the budget."""
    node = defaulttags.do_for(parser, token)
    node.sequence = _MeteredSequence(node.sequence)
    node.nodelist_loop = NodeList([_LoopBody(node.nodelist_loop)])
    return node


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
    register.filter(_name, _budgeted_filter(_capped(_name)), is_safe=True)


@register.filter(name="floatformat", is_safe=True)
@_budgeted_filter
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
@_budgeted_filter
def _json_filter(value):
    """`{{ event|json }}`: the value as JSON, for webhook bodies and push data."""
    return json.dumps(_plain(value), ensure_ascii=False, default=str)


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
        template = _engine(autoescape).from_string(source)
    except TemplateSyntaxError as exc:
        return str(exc)
    except Exception as exc:  # a tag's own parser can raise anything
        return f"{type(exc).__name__}: {exc}"
    # Text and plain variables only: rendered without Django (channels/render_fast.py).
    template.maestra_plain_parts = plain_parts(template)
    return template


def template_syntax_problem(source: str, *, html: bool = False) -> str | None:
    """The syntax error of a template source, or None (for validating on save)."""
    compiled = _compile(source, html) if source else None
    return compiled if isinstance(compiled, str) else None


def render_string(*, source: str, context: dict, field: str, html: bool = False) -> str:
    """One source rendered on a budget of its own (a set_field value)."""
    if not source:
        return ""
    budget = RenderBudget()
    return _render_frozen(source=source, frozen=freeze(context), field=field, html=html, budget=budget)


def _render_frozen(
    *, source: str, frozen: MappingProxyType, field: str, budget: RenderBudget, html: bool = False
) -> str:
    """render_string with a context already frozen: a template's fields share
    one frozen context (freezing is a good part of the cost of a render) and
    one budget."""
    if not source:
        return ""
    compiled = _compile(source, html)
    if isinstance(compiled, str):
        raise RenderError(f"{field}: {compiled}")
    parts = compiled.maestra_plain_parts
    output = None if parts is None else render_plain(parts, frozen, html)
    if output is not None:
        try:
            budget.add_output(len(output))
        except RenderError as exc:
            raise RenderError(f"{field}: {exc}", code=exc.code) from None
        return output
    token = _budget.set(budget)
    before = budget.chars
    try:
        output = compiled.render(Context(frozen, autoescape=html))
        # The text around the loops (the loops' own output is charged already).
        budget.add_output(len(output) - (budget.chars - before))
    except MissingValue as exc:
        raise MissingValue(f"{field}: {exc}") from None
    except RenderError as exc:
        raise RenderError(f"{field}: {exc}", code=exc.code) from None
    except VariableDoesNotExist as exc:
        # Its own message shows the whole mapping the lookup failed in: the
        # customer's data has no place in a message's reason.
        key = exc.params[0] if exc.params else "?"
        raise MissingValue(f"{field}: the data has no value {key!r}") from None
    except Exception as exc:  # data a filter or tag cannot handle, RecursionError, MemoryError
        raise RenderError(f"{field}: {type(exc).__name__}: {exc}", code=RENDER_ERROR) from None
    finally:
        _budget.reset(token)
    # An exact str: Django marks what it renders as safe HTML (SafeString); it
    # is not, and a page that shows it must escape it like any untrusted text.
    return str.__str__(output)


def freeze(value: Any, *, _depth: int = 0) -> Any:
    """JSON-like data → read-only mapping proxies and tuples. Anything else
    (a model instance, a function) becomes its string form, so a caller that
    slips one in cannot expose its attributes or methods. Data nested deeper
    than MAX_CONTEXT_DEPTH is a RenderError (render_error). Plain scalars first."""
    if type(value) in _PLAIN_TYPES:
        return value
    if isinstance(value, dict | MappingProxyType | list | tuple) and _depth >= MAX_CONTEXT_DEPTH:
        raise RenderError(
            f"context: the data is nested more than {MAX_CONTEXT_DEPTH} levels deep", code=RENDER_ERROR
        )
    if isinstance(value, dict | MappingProxyType):
        # A loop, not a comprehension calling freeze for each value: the plain
        # values (most of a context) are taken as they are, without a call.
        frozen = {}
        for k, v in value.items():
            key = k if type(k) is str else str(k)
            if not key.startswith("_"):
                frozen[key] = v if type(v) in _PLAIN_TYPES else freeze(v, _depth=_depth + 1)
        return MappingProxyType(frozen)
    if isinstance(value, list | tuple):
        return tuple(freeze(v, _depth=_depth + 1) for v in value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def customer_context(customer: Any) -> dict:
    """What a template may know about a customer, from a Customer instance or
    a values() dict with the same names."""

    # dict.get itself for a dict (one per message in a batch): defaults given.
    get = (
        customer.get if isinstance(customer, dict) else lambda name, default: getattr(customer, name, default)
    )
    first, last = get("first_name", "") or "", get("last_name", "") or ""
    return {
        "external_id": get("external_id", ""),
        "email": get("email", ""),
        "phone": get("phone", ""),
        "first_name": first,
        "last_name": last,
        "full_name": f"{first} {last}".strip(),
        "timezone": get("timezone", ""),
        "locale": get("locale", ""),
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
    Raises RenderError naming the field and the problem. All fields share one
    render budget."""
    channel = template.channel
    budget = RenderBudget()
    frozen = freeze(context)

    def text(field: str, source: str, html: bool = False) -> str:
        return _render_frozen(source=source, frozen=frozen, field=field, html=html, budget=budget)

    if channel == "email":
        subject = _no_line_breaks(text("subject", template.subject).strip(), "subject")
        html = text("html", template.html, html=True)
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


# A stand-in for the parts of a context a preview (channels/preview.py) or the
# check on save has no real data for.
PREVIEW_EXTRA = {"event": {}, "promo_code": "PREVIEW-CODE", "flow": {"name": "Preview"}}
# Who a template is rendered for when no real customer is at hand: the admin's
# preview without a chosen customer, the check on save, the flow validation.
SAMPLE_CUSTOMER = {
    "external_id": "sample-1",
    "email": "alex@example.com",
    "phone": "+4915100000000",
    "first_name": "Alex",
    "last_name": "Sample",
    "timezone": "Europe/Berlin",
    "fields": {},
}


# --- the check on save -------------------------------------------------------------

# The fields of a Template that are template sources (webhook headers too).
SOURCE_FIELDS = ("subject", "text", "html", "url")


def template_sources(template: Any) -> list[tuple[str, Any, bool]]:
    """(field, source, is_html) of every source of a template: a Template, or
    a mapping of its fields (a form's or a serializer's data). Headers that
    are not an object are left to `template_problems`."""
    if isinstance(template, Mapping):
        get = template.get
    else:
        get = lambda name, default=None: getattr(template, name, default)  # noqa: E731
    sources = [(field, get(field) or "", field == "html") for field in SOURCE_FIELDS]
    headers = get("headers") or {}
    if isinstance(headers, dict):
        sources += [(f"headers.{name}", source, False) for name, source in headers.items()]
    return sources


def sample_render_problem(template: Any) -> tuple[str, str] | None:
    """(field, problem) of the first source of `template` that does not render
    for SAMPLE_CUSTOMER, or None. Each source is rendered as a send renders
    it (same compiler, sandbox and budget), so a syntax error, a filter asked
    for more than its cap or a template past the budget shows here; the
    checks of the assembled message (an empty SMS, a webhook URL) and values
    missing from the data (MissingValue) do not: they depend on data the
    sample customer does not have."""
    return sources_render_problem(template_sources(template))


def sources_render_problem(sources: list[tuple[str, Any, bool]]) -> tuple[str, str] | None:
    """sample_render_problem of (field, source, is_html) sources rendered
    together on one budget (a template's, or one of its translations)."""
    budget = RenderBudget()
    frozen = freeze(build_context(customer=SAMPLE_CUSTOMER, extra=PREVIEW_EXTRA))
    for field, source, html in sources:
        if not isinstance(source, str):
            return field, "must be text"
        try:
            _render_frozen(source=source, frozen=frozen, field=field, html=html, budget=budget)
        except MissingValue:
            continue
        except RenderError as exc:
            return field, str(exc).removeprefix(f"{field}: ")
    return None
