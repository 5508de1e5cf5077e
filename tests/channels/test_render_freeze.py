"""freeze and customer_context take shortcuts for the plain values of a
context; the result is what the straightforward versions give."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.rendering import _PLAIN_TYPES, MAX_CONTEXT_DEPTH, RenderError, customer_context, freeze


def reference_freeze(value: Any, *, _depth: int = 0) -> Any:
    """freeze as it was written before the shortcut (a comprehension per dict)."""
    if type(value) in _PLAIN_TYPES:
        return value
    if isinstance(value, dict | MappingProxyType | list | tuple) and _depth >= MAX_CONTEXT_DEPTH:
        raise RenderError("too deep", code="render_error")
    if isinstance(value, dict | MappingProxyType):
        return MappingProxyType(
            {
                str(k): reference_freeze(v, _depth=_depth + 1)
                for k, v in value.items()
                if not str(k).startswith("_")
            }
        )
    if isinstance(value, list | tuple):
        return tuple(reference_freeze(v, _depth=_depth + 1) for v in value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


class Thing:
    def __str__(self) -> str:
        return "a thing"


keys = st.one_of(st.sampled_from(["a", "_b", "c", "", "_"]), st.integers(-3, 3), st.booleans(), st.none())
leaves = st.one_of(
    st.text(max_size=3), st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(), st.just(Thing())
)
data = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(keys, inner, max_size=4),
        st.dictionaries(keys, inner, max_size=4).map(MappingProxyType),
    ),
    max_leaves=20,
)


def same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, MappingProxyType):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@settings(max_examples=500, deadline=None)
@given(value=data)
def test_freeze_gives_what_the_straightforward_version_gives(value):
    assert same(freeze(value), reference_freeze(value))


@pytest.mark.parametrize("levels", [MAX_CONTEXT_DEPTH - 1, MAX_CONTEXT_DEPTH, MAX_CONTEXT_DEPTH + 1])
def test_freeze_fails_at_the_same_depth(levels):
    value: Any = "leaf"
    for _ in range(levels):
        value = {"a": value}
    outcomes = []
    for function in (freeze, reference_freeze):
        try:
            function(value)
            outcomes.append("ok")
        except RenderError:
            outcomes.append("too deep")
    assert outcomes[0] == outcomes[1]


class Row:
    first_name = "Ann"
    email = "ann@example.com"


def test_customer_context_of_a_dict_and_of_an_object_fill_the_same_defaults():
    expected = {
        "external_id": "",
        "email": "ann@example.com",
        "phone": "",
        "first_name": "Ann",
        "last_name": "",
        "full_name": "Ann",
        "timezone": "",
        "locale": "",
        "fields": {},
    }
    assert customer_context({"first_name": "Ann", "email": "ann@example.com"}) == expected
    assert customer_context(Row()) == expected
    assert customer_context({"first_name": None, "fields": None, "email": None})["first_name"] == ""
    assert customer_context({"email": None})["email"] is None
