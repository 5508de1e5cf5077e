"""channels.render_fast renders templates of text and plain variables without
Django: whenever it answers, the very text Django renders (escaped as Django
escapes in HTML), and it answers None (Django renders) for anything else."""

from __future__ import annotations

import pytest
from django.template import Context
from hypothesis import given, settings
from hypothesis import strategies as st

from channels import rendering
from channels.render_fast import plain_parts, render_plain
from channels.rendering import MAX_RENDERED_CHARS, RenderError, build_context, freeze, render_string

KEYS = ["customer", "first_name", "fields", "tier", "event", "a", "0", "items", "True", "None", "_x", "x y"]
scalars = st.one_of(
    st.text(alphabet="ab <>&'\"é{}%\n", max_size=8),
    st.integers(-1000, 1000),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
data = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=12,
)
contexts = st.dictionaries(st.sampled_from(KEYS), data, max_size=5)
NAMES = [k for k in KEYS if not k.startswith("_") and " " not in k]


@st.composite
def paths(draw, context: dict) -> str:
    """A variable path, mostly one that walks into `context` (so it finds values)."""
    keys, value = [], context
    while isinstance(value, dict) and value and draw(st.integers(0, 4)):
        key = draw(st.sampled_from(sorted(value)))
        keys.append(key)
        value = value[key]
    keys += draw(st.lists(st.sampled_from(NAMES), max_size=3 - min(len(keys), 3)))
    return ".".join(keys or ["a"])


@st.composite
def templates(draw, context: dict) -> str:
    pieces = st.one_of(
        st.text(alphabet="ab <>&'\"é%\n", max_size=6),
        paths(context).map(lambda path: "{{ " + path + " }}"),
        paths(context).map(lambda path: "{{" + path + " }}"),
        paths(context).map(lambda path: "{{ " + path + "|upper }}"),
        paths(context).map(lambda path: "{% if " + path + " %}y{% endif %}"),
        st.sampled_from(
            ["{{ 5 }}", '{{ "lit" }}', "{{ _('t') }}", "{# c #}", "{% for v in a %}{{ v }}{% endfor %}"]
        ),
    )
    return "".join(draw(st.lists(pieces, max_size=6)))


def django_render(source: str, frozen, html: bool) -> str:
    return str(rendering._compile(source, html).render(Context(frozen, autoescape=html)))


@settings(max_examples=800, deadline=None)
@given(context=contexts, html=st.booleans(), data=st.data())
def test_whenever_it_answers_it_renders_what_django_renders(context, html, data):
    source = data.draw(templates(context))
    compiled = rendering._compile(source, html)
    if isinstance(compiled, str):
        return  # does not compile: no render at all
    frozen = freeze(context)
    parts = compiled.maestra_plain_parts
    fast = None if parts is None else render_plain(parts, frozen, html)
    if fast is not None:
        assert type(fast) is str
        assert fast == django_render(source, frozen, html)
    # And a render through the module's entry point is Django's, fast or not.
    try:
        expected = django_render(source, frozen, html)
    except Exception:
        return  # a failing render is rendering.py's own business (test_rendering.py)
    if len(expected) <= MAX_RENDERED_CHARS:
        assert render_string(source=source, context=context, field="text", html=html) == expected


@pytest.mark.parametrize("html", [False, True])
def test_text_and_string_variables_take_the_fast_path(html):
    source = "Hi {{ customer.first_name }} <{{ customer.fields.tier }}> & {{ flow.name }}"
    compiled = rendering._compile(source, html)
    assert compiled.maestra_plain_parts == (
        "Hi ",
        ("customer", "first_name"),
        " <",
        ("customer", "fields", "tier"),
        "> & ",
        ("flow", "name"),
    )
    frozen = freeze(
        build_context(
            customer={"first_name": "<b>Ann</b> & 'Bo'", "fields": {"tier": '"gold"'}},
            extra={"flow": {"name": "W"}},
        )
    )
    fast = render_plain(compiled.maestra_plain_parts, frozen, html)
    assert fast == django_render(source, frozen, html)
    if html:
        assert fast == "Hi &lt;b&gt;Ann&lt;/b&gt; &amp; &#x27;Bo&#x27; <&quot;gold&quot;> & W"


@pytest.mark.parametrize(
    "source",
    [
        "{{ customer.first_name|upper }}",
        "{% if customer %}x{% endif %}",
        "{{ 5 }}",
        '{{ "text" }}',
        "{% for v in customer.fields.kids %}{{ v }}{% endfor %}",
    ],
)
def test_filters_tags_and_literals_are_left_to_django(source):
    assert plain_parts(rendering._compile(source, False)) is None


@pytest.mark.parametrize(
    "value",
    [12, 1.5, True, None, ["a"], {"k": "v"}],
)
def test_values_other_than_text_are_left_to_django(value):
    frozen = freeze({"event": {"v": value}})
    parts = rendering._compile("{{ event.v }}", True).maestra_plain_parts
    assert render_plain(parts, frozen, True) is None
    assert render_plain(parts, freeze({"event": {}}), True) is None  # missing: Django's ""


def test_the_output_budget_still_holds_on_the_fast_path():
    context = build_context(customer={"first_name": "x" * (MAX_RENDERED_CHARS + 1)})
    with pytest.raises(RenderError) as info:
        render_string(source="{{ customer.first_name }}", context=context, field="text")
    assert info.value.code == "render_error"
    assert str(info.value) == f"text: the rendered text is longer than {MAX_RENDERED_CHARS:,} characters"


def test_the_cpu_budget_still_holds_on_the_fast_path(monkeypatch):
    clock = iter([0.0, 5.0])
    monkeypatch.setattr(rendering, "cpu_clock", lambda: next(clock))
    with pytest.raises(RenderError) as info:
        render_string(
            source="Hi {{ customer.first_name }}", context=build_context(customer={}), field="subject"
        )
    assert info.value.code == "render_error"
    assert str(info.value).startswith("subject: the render used more than its 1 s of CPU time")


@pytest.mark.parametrize(
    "source", ["{{ True }}", "{{ None }}", "{{ event.items }}", "{{ event.keys }}", "{{ nothing }}"]
)
def test_a_key_the_data_lacks_is_left_to_django(source):
    # Django falls back to its builtins (True), to a mapping's methods (items)
    # or to "": only Django knows which.
    frozen = freeze({"event": {"a": "x"}})
    compiled = rendering._compile(source, True)
    assert render_plain(compiled.maestra_plain_parts, frozen, True) is None
    assert render_string(source=source, context={"event": {"a": "x"}}, field="text") == django_render(
        source, frozen, False
    )
