"""maestra/jsonvalues.py: the bounds every JSON value meets at the door."""

import pytest

from maestra.jsonvalues import HAS_NUL, MAX_DEPTH, NOT_UNICODE, json_problems, text_problem


def nested(levels: int):
    value: dict = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def test_it_accepts_plain_json_nested_32_levels():
    assert MAX_DEPTH == 32
    assert json_problems(nested(32)) == []
    assert json_problems([[[[1.5, True, None, "é", 10**30]]]]) == []
    assert json_problems("just a string") == []


def test_it_names_the_first_level_too_deep():
    assert json_problems(nested(33), "payload") == [
        ("payload" + ".a" * 32, "nested more than 32 levels deep")
    ]
    assert json_problems([nested(32)]) == [("0" + ".a" * 31, "nested more than 32 levels deep")]


def test_it_refuses_any_depth_without_recursing():
    value: list = []
    for _ in range(200_000):
        value = [value]
    [(path, message)] = json_problems(value)
    assert path == ".".join(["0"] * 32)
    assert message == "nested more than 32 levels deep"


@pytest.mark.parametrize(
    ("value", "path", "message"),
    [
        ({"a": "x\ud800"}, "a", NOT_UNICODE),
        ({"a": ["ok", "\udfff"]}, "a.1", NOT_UNICODE),
        ({"a": "x\x00"}, "a", HAS_NUL),
        ({"k\ud800": 1}, "", "an object key " + NOT_UNICODE),
        ({1: "one"}, "", "object keys must be strings, not int"),
        ({"x": float("nan")}, "x", "numbers must be finite"),
        ({"x": float("inf")}, "x", "numbers must be finite"),
        ({"x": {1, 2}}, "x", "not a JSON value (set)"),
    ],
)
def test_it_names_each_problem_by_its_path(value, path, message):
    assert json_problems(value) == [(path, message)]


def test_it_reports_a_bounded_number_of_problems():
    assert len(json_problems(["\x00"] * 1000)) == 20


@pytest.mark.parametrize(
    ("text", "problem"),
    [("ok", None), ("é€😀", None), ("\ud800", NOT_UNICODE), ("\x00", HAS_NUL), ("é\x00", HAS_NUL)],
)
def test_text_problem(text, problem):
    assert text_problem(text) == problem
