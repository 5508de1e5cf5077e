"""eq on a text value takes a shortcut in the compiled predicate: the same
verdict as the general op, for every kind of value found (or not) at the path."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from customers.rules.predicate import _MISSING, RuleFacts, _apply, compile_predicate

NOW = datetime(2026, 6, 1, tzinfo=UTC)
VALUES = ["gold", "Gold", "", "gold ", 1, 0, 1.5, True, False, None, ["gold"], {"a": "gold"}, _MISSING]


@pytest.mark.parametrize("expected", ["gold", "", "1", "true"])
@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("source", ["fields", "event"])
def test_text_eq_agrees_with_the_general_op(source, value, expected):
    document = {} if value is _MISSING else {"tier": value}
    facts = RuleFacts(fields=document) if source == "fields" else RuleFacts(event=document)
    field = "customer.fields.tier" if source == "fields" else "event.tier"
    matches = compile_predicate({"field": field, "op": "eq", "value": expected})
    general = _apply("eq", _MISSING if value is None else value, expected, NOW)
    assert matches(facts, NOW) is general


def test_text_eq_with_no_event_at_all():
    matches = compile_predicate({"field": "event.tier", "op": "eq", "value": "gold"})
    assert matches(RuleFacts(event=None), NOW) is False
