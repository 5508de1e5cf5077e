"""The render budget (SPEC §12): CPU time, output and loop iterations are
charged while a template runs, so a small template cannot hold a worker; data
nested too deep fails the render instead of the stack; what a render returns
is plain text, never Django's SafeString."""

import itertools

import pytest
from django.utils.safestring import SafeData

from channels import rendering
from channels.models import Template
from channels.rendering import (
    MAX_LOOP_ITERATIONS,
    MAX_RENDERED_CHARS,
    RenderBudget,
    RenderError,
    build_context,
    render_string,
    render_template,
)

DIGITS = '"0123456789"'
# The shape of the report's ~550-character template: loops nested over a
# literal, ten iterations each, 10**6 rounds of output at the innermost level.
LOOP_BOMB = (
    "".join(f"{{% for v{depth} in {DIGITS} %}}" for depth in range(6))
    + "{{ customer.first_name }} {{ v0 }}{{ v1 }}{{ v2 }}{{ v3 }}{{ v4 }}{{ v5 }} "
    + "{% endfor %}" * 6
)


def render(source: str, *, html: bool = False, event: dict | None = None, fields: dict | None = None) -> str:
    context = build_context(
        customer={"first_name": "Ann", "fields": fields or {}}, extra={"event": event or {}}
    )
    return render_string(source=source, context=context, field="text", html=html)


def nested(levels: int) -> dict:
    value: dict = {"leaf": "x"}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def test_nested_loops_stop_at_the_iteration_cap_before_they_run(monkeypatch):
    bodies = []
    original = rendering._LoopBody.render
    monkeypatch.setattr(
        rendering._LoopBody, "render", lambda self, ctx: bodies.append(1) or original(self, ctx)
    )
    # This test is about the iteration cap: a stopped CPU clock keeps a loaded
    # machine (CI with other jobs) from hitting the CPU budget first.
    monkeypatch.setattr(rendering, "cpu_clock", lambda: 0.0)

    with pytest.raises(RenderError) as info:
        render(LOOP_BOMB)

    assert info.value.code == "render_error"
    assert str(info.value) == f"text: the loops would run more than {MAX_LOOP_ITERATIONS:,} times in all"
    # Each loop is charged when it starts: the render stopped after a few
    # thousand iterations, not a million.
    assert len(bodies) < MAX_LOOP_ITERATIONS


def test_the_iterations_of_all_loops_add_up():
    per_loop = "{% for c in event.items %}.{% endfor %}"
    items = list(range(MAX_LOOP_ITERATIONS // 2))

    assert render(per_loop * 2, event={"items": items}) == "." * len(items) * 2
    with pytest.raises(RenderError, match="loops would run more than"):
        render(per_loop * 3, event={"items": items})


def test_output_is_charged_per_iteration_as_it_is_produced(monkeypatch):
    charged = []
    original = RenderBudget.add_output
    monkeypatch.setattr(RenderBudget, "add_output", lambda self, n: charged.append(n) or original(self, n))
    chunk = "x" * 100_000

    with pytest.raises(RenderError) as info:
        render(
            "{% for i in event.items %}{{ event.chunk }}{% endfor %}",
            event={"items": list(range(100)), "chunk": chunk},
        )

    assert info.value.code == "render_error"
    assert str(info.value) == f"text: the rendered text is longer than {MAX_RENDERED_CHARS:,} characters"
    # Stopped at the 11th iteration of 100, before the 10,000,000 characters existed.
    assert len(charged) == 11


def test_nested_loop_output_is_counted_once():
    # 100 x 100 iterations of 99 characters: 990,000 characters in all, under
    # the cap although the inner loops' output is part of the outer loop's.
    source = "{% for a in event.items %}{% for b in event.items %}" + "y" * 99 + "{% endfor %}{% endfor %}"

    assert len(render(source, event={"items": list(range(100))})) == 990_000


def test_the_output_budget_covers_every_field_of_a_message():
    half = "z" * (MAX_RENDERED_CHARS // 2 + 1)
    template = Template(channel="email", subject="S", text="{{ event.half }}", html="<p>{{ event.half }}</p>")

    with pytest.raises(RenderError, match="text: the rendered text is longer than") as info:
        render_template(
            template=template, context=build_context(customer={}, extra={"event": {"half": half}})
        )
    assert info.value.code == "render_error"


def test_a_filter_cannot_grow_a_value_past_the_output_budget():
    doubling = "{% with a=customer.first_name %}" + "{% with a=a|add:a %}" * 30 + "{{ a|length }}"
    doubling += "{% endwith %}" * 31

    with pytest.raises(RenderError, match="a filter produced a value longer than") as info:
        render(doubling)
    assert info.value.code == "render_error"


def test_the_cpu_budget_is_checked_while_rendering(monkeypatch):
    # A clock that advances 0.3 s each time the budget reads it: the render
    # is stopped at a check inside the loop, not after it.
    ticks = itertools.count()
    monkeypatch.setattr(rendering, "cpu_clock", lambda: next(ticks) * 0.3)

    with pytest.raises(RenderError) as info:
        render("{% for i in event.items %}{{ i|add:1 }}{% endfor %}", event={"items": list(range(1000))})

    assert info.value.code == "render_error"
    assert str(info.value) == "text: the render used more than its 1 s of CPU time"
    assert next(ticks) < 10


def test_a_render_within_the_budget_is_unchanged():
    source = (
        "{% for kid in customer.fields.kids %}{{ forloop.counter }}:{{ kid|upper }}"
        "{% if not forloop.last %}, {% endif %}{% empty %}none{% endfor %}"
    )
    assert render(source, fields={"kids": ["bo", "cy"]}) == "1:BO, 2:CY"
    assert render(source) == "none"
    assert render("{{ customer.fields.kids|join:'<br>' }}", html=True, fields={"kids": ["<a>", "b"]}) == (
        "&lt;a&gt;<br>b"
    )


@pytest.mark.parametrize("where", ["event", "fields"])
def test_data_nested_too_deep_is_a_render_error_not_a_recursion_error(where):
    deep = nested(500)

    with pytest.raises(RenderError) as info:
        render("Hi {{ customer.first_name }}", **{where: deep})

    assert info.value.code == "render_error"
    assert "nested more than 40 levels deep" in str(info.value)


def test_data_nested_as_deep_as_the_api_accepts_renders():
    assert render("{{ event.a.a.a|length }}", event=nested(32)) == "1"
    assert render("{{ customer.fields.a.a|length }}", fields=nested(32)) == "1"


def test_a_missing_filter_argument_is_a_render_error_that_leaks_no_data():
    with pytest.raises(RenderError) as info:
        render("{{ customer.first_name|ljust:event.width }}", event={"secret": "do-not-show"})

    assert info.value.code == "render_error"
    assert str(info.value) == "text: the data has no value 'width'"


def test_compile_errors_and_filter_caps_stay_template_errors():
    for source in ("{% if %}", "{{ customer.first_name|nosuchfilter }}", "{{ 1.5|floatformat:900 }}"):
        with pytest.raises(RenderError) as info:
            render(source)
        assert info.value.code == "template_error", source


def test_what_a_render_returns_is_plain_text_not_safe_html():
    payload = "<img src=x onerror=alert(1)>"
    template = Template(
        channel="email", subject="Hi {{ customer.first_name }}", text="{{ customer.first_name }}"
    )
    rendered = render_template(template=template, context=build_context(customer={"first_name": payload}))

    assert render("{{ customer.first_name }}") == "Ann"
    assert not isinstance(render("{{ customer.first_name }}"), SafeData)
    assert not any(isinstance(value, SafeData) for value in rendered.values())
    assert rendered["text"] == payload
