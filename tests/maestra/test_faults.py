"""maestra/faults.py: what the engine blames on one input, and what on the system."""

import pytest
from django.db import (
    DataError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
    connection,
)

from maestra.faults import MAX_ERROR_LENGTH, error_text, is_system_error, split_until_alone


class Cause(Exception):
    def __init__(self, sqlstate):
        self.sqlstate = sqlstate


def wrapped(error_class, sqlstate):
    error = error_class("boom")
    error.__cause__ = Cause(sqlstate) if sqlstate else None
    return error


@pytest.mark.parametrize(
    "error",
    [
        InterfaceError("connection already closed"),
        ProgrammingError("relation does not exist"),
        MemoryError(),
        wrapped(OperationalError, None),  # SQLite: database is locked, disk I/O error
        wrapped(OperationalError, "08006"),  # connection failure
        wrapped(OperationalError, "53100"),  # disk full
        wrapped(OperationalError, "57P01"),  # admin shutdown
        wrapped(OperationalError, "57014"),  # statement timeout
        wrapped(OperationalError, "40P01"),  # a deadlock that survived the retries
    ],
)
def test_errors_of_the_system_are_not_blamed_on_a_run(error):
    assert is_system_error(error)


@pytest.mark.parametrize(
    "error",
    [
        OverflowError("date value out of range"),
        RecursionError("maximum recursion depth exceeded"),
        ValueError("the recurrence does not fire"),
        KeyError("recurrence"),
        wrapped(DataError, "22003"),  # numeric value out of range
        wrapped(IntegrityError, "23505"),
        wrapped(OperationalError, "54001"),  # stack depth limit exceeded: deep data
    ],
)
def test_errors_of_the_data_are(error):
    assert not is_system_error(error)


def test_a_real_database_error_of_the_data_is_not_a_system_error(db):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite casts anything")
    with pytest.raises(DataError) as raised, connection.cursor() as cursor:
        cursor.execute("SELECT 2147483647::integer + 1")
    assert not is_system_error(raised.value)


def test_the_error_text_names_the_type_the_message_and_the_notes():
    error = OverflowError("date value out of range")
    error.add_note("at node 'wait' (wait) of flow 7")
    assert error_text(error) == "OverflowError: date value out of range (at node 'wait' (wait) of flow 7)"
    assert error_text(KeyError()) == "KeyError: KeyError()"


def test_the_error_text_is_short_and_storable():
    text = error_text(ValueError("x" * 10_000 + "\x00\ud800"))
    assert len(text) == MAX_ERROR_LENGTH
    assert error_text(ValueError("a\x00b\ud800")) == "ValueError: a\\x00b?"


def test_split_until_alone_finds_each_bad_item_and_passes_every_good_one():
    attempts = []
    passed = []

    def attempt(part):
        attempts.append(list(part))
        if 3 in part or 11 in part:
            raise ValueError(f"bad among {part}")
        passed.extend(part)

    failed = split_until_alone(list(range(16)), attempt)
    assert [(item, str(error)) for item, error in failed] == [(3, "bad among [3]"), (11, "bad among [11]")]
    assert sorted(passed) == [item for item in range(16) if item not in (3, 11)]
    assert len(passed) == len(set(passed))  # nothing went through twice
    assert len(attempts) <= 1 + 2 * 2 * 4  # about 2·log2(N) per bad item


def test_split_until_alone_costs_one_attempt_when_nothing_fails():
    attempts = []
    assert split_until_alone([1, 2, 3], attempts.append) == []
    assert attempts == [[1, 2, 3]]


def test_split_until_alone_lets_a_system_error_through():
    def attempt(part):
        raise InterfaceError("connection already closed")

    with pytest.raises(InterfaceError):
        split_until_alone([1, 2], attempt)
