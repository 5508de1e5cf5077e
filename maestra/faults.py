"""Telling a poison input from a broken system (SPEC §12, "fault isolation").

When the engine fails while processing a batch, it must decide whether the
data is to blame (one run, one flow, one event: isolate it, stop it with a
reason, go on with the rest) or the system (the database went away, the disk
is full, the code does not match the schema: stop and say so, because every
run would fail the same way and stopping them all would lose them).

`is_system_error` draws that line; `error_text` is what the product keeps
and shows about an error (on the run, in the audit log, on the monitoring
page).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from django.db import InterfaceError, OperationalError, ProgrammingError

T = TypeVar("T")

# SQLSTATE classes of the server or the connection, not of the data:
# 08 connection, 53 insufficient resources, 55 object not in prerequisite
# state (lock timeouts), 57 operator intervention (shutdown, cancelled
# statements), 58 system error (I/O), XX internal error, and 40 (a deadlock or
# serialization failure that survived the engine's retries).
SYSTEM_SQLSTATE_CLASSES = ("08", "40", "53", "55", "57", "58", "XX")
MAX_ERROR_LENGTH = 2000


def is_system_error(exc: BaseException) -> bool:
    """True when `exc` says the system is broken rather than one input: the
    caller should let it propagate instead of blaming (and stopping) a run."""
    if isinstance(exc, InterfaceError | ProgrammingError | MemoryError):
        # ProgrammingError: SQL the code got wrong or a schema that is not
        # migrated; every batch would fail alike.
        return True
    if isinstance(exc, OperationalError):
        sqlstate = getattr(exc.__cause__, "sqlstate", None)
        # SQLite gives no SQLSTATE: its operational errors are "database is
        # locked", "disk I/O error" and the like.
        return sqlstate is None or sqlstate[:2] in SYSTEM_SQLSTATE_CLASSES
    return False


def error_text(exc: BaseException) -> str:
    """ "OverflowError: date value out of range (at node 'wait' (wait))": the
    exception's type, message and notes (the engine notes the node), cut to
    MAX_ERROR_LENGTH characters."""
    message = str(exc).strip() or repr(exc)
    text = f"{type(exc).__name__}: {message}"
    notes = getattr(exc, "__notes__", None) or []
    if notes:
        text += " (" + "; ".join(str(note) for note in notes) + ")"
    if len(text) > MAX_ERROR_LENGTH:
        text = text[: MAX_ERROR_LENGTH - 1] + "…"
    # Kept in a text column: no NUL, no lone surrogate (PostgreSQL refuses both).
    return text.replace("\x00", "\\x00").encode("utf-8", "replace").decode("utf-8")


def split_until_alone(items: Sequence[T], attempt: Callable[[list[T]], None]) -> list[tuple[T, Exception]]:
    """Call `attempt(items)`; when it raises (not a system error), call it on
    each half instead, recursively, until every failing part is one item.
    Returns those items with their errors; every other item went through a
    successful attempt. `attempt` must leave nothing behind when it raises (a
    savepoint, or work kept in memory until it returns). One attempt when
    nothing fails; about 2·log2(N) more for one bad item among N."""
    failed: list[tuple[T, Exception]] = []
    parts = [list(items)]
    while parts:
        part = parts.pop()
        try:
            attempt(part)
        except Exception as exc:
            if is_system_error(exc):
                raise
            if len(part) == 1:
                failed.append((part[0], exc))
            else:
                half = len(part) // 2
                parts += [part[half:], part[:half]]  # the first half next
    return failed
