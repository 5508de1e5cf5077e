"""Bounds on the JSON that enters the product (SPEC §12, "bounds at the door").

Event payloads, customer fields, flow documents and everything inside them
(rules, step values, emitted payloads) are checked here, by the services and
parsers every door uses (API, admin, import commands), before anything is
stored:

- plain JSON only: objects with string keys, lists, strings, finite numbers,
  booleans and null (Python callers could hand in a set, a datetime or NaN,
  which could be neither stored nor exported);
- at most MAX_DEPTH levels of nesting, the outermost object or list being
  level 1. Deeper values are refused rather than stored, because the code
  that reads them later (the template context, the rule language, JSON
  encoders) walks them recursively, and a run must never die of a
  RecursionError on data an integration sent weeks earlier;
- strings (and keys) are text both databases store: valid Unicode (a lone
  surrogate such as "\\ud800" cannot be encoded as UTF-8) without the NUL
  character (PostgreSQL refuses "\\u0000" in text columns and in jsonb).

The walk is iterative, so a value nested 100,000 levels deep is refused
without ever recursing.
"""

from __future__ import annotations

import math
from typing import Any

MAX_DEPTH = 32
NOT_UNICODE = "must be valid Unicode text (it holds a lone surrogate such as \\ud800)"
HAS_NUL = "must not contain the NUL character (\\u0000), which the database cannot store"
# A value with more problems than this is reported by its first ones.
MAX_PROBLEMS = 20


def text_problem(text: str) -> str | None:
    """Why a string cannot be stored as text (see above), or None."""
    if text.isascii():
        return HAS_NUL if "\x00" in text else None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return NOT_UNICODE
    return HAS_NUL if "\x00" in text else None


def json_problems(value: Any, path: str = "", *, max_depth: int = MAX_DEPTH) -> list[tuple[str, str]]:
    """Why `value` is not plain, bounded JSON, as (dotted path, message) pairs
    (`path` names `value` itself; the root is ""). Empty when it is fine."""
    problems: list[tuple[str, str]] = []
    stack = [(value, path, 1)]
    while stack and len(problems) < MAX_PROBLEMS:
        current, where, depth = stack.pop()
        if isinstance(current, dict | list) and depth > max_depth:
            problems.append((where, f"nested more than {max_depth} levels deep"))
        elif isinstance(current, dict):
            for key, item in current.items():
                if not isinstance(key, str):
                    problems.append((where, f"object keys must be strings, not {type(key).__name__}"))
                    continue
                if message := text_problem(key):
                    problems.append((where, f"an object key {message}"))
                    continue
                stack.append((item, f"{where}.{key}" if where else key, depth + 1))
        elif isinstance(current, list):
            stack.extend(
                (item, f"{where}.{index}" if where else str(index), depth + 1)
                for index, item in enumerate(current)
            )
        elif isinstance(current, str):
            if message := text_problem(current):
                problems.append((where, message))
        elif isinstance(current, float):
            if not math.isfinite(current):
                problems.append((where, "numbers must be finite"))
        elif current is not None and not isinstance(current, int | bool):
            problems.append((where, f"not a JSON value ({type(current).__name__})"))
    return problems
