"""JSON request bodies: one reader for every door that takes JSON (the
REST API's parser and the admin's JSON endpoints such as the canvas
autosave), so they refuse the same things the same way:

- a body over the limit, whatever its declared length → 413;
- bytes that are not UTF-8, text that is not JSON (also NaN/Infinity and
  nesting deeper than the decoder can follow) → 400;
- strings (values or keys) holding the NUL character, which PostgreSQL text
  and jsonb cannot store, or a lone UTF-16 surrogate (`"\\ud800"`), which is
  not Unicode and cannot be stored nor encoded back → 400 naming the field.

DRF reads the request stream itself, so Django's DATA_UPLOAD_MAX_MEMORY_SIZE
only applies through request.body: without the checks here a client could
make a worker read a body of any size, or see a 500 where a 413 belongs.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework.parsers import JSONParser

from maestra.api.errors import ApiError, PayloadTooLarge, error

# NUL, and the surrogate code points: valid pairs are joined into one
# character by the decoder, so any left over is a lone one.
_BAD_CHARACTER = re.compile("[\x00\ud800-\udfff]")
# How such a character is written in JSON text: escaped (\u0000, \ud800–\udfff)
# or, in text that is not UTF-8 bytes, as itself. Text with neither decodes to
# none, and the walk over every string of a 1,000-event batch is skipped.
_BAD_ESCAPE = re.compile(r"\\u(?:0000|d[89a-f][0-9a-f]{2})", re.IGNORECASE)
# Enough to show what is wrong without echoing a large body back.
MAX_REPORTED = 20


def max_body_bytes() -> int:
    return settings.MAESTRA_API_MAX_BODY_BYTES


def read_body(request, *, limit: int | None = None) -> bytes:
    """The raw body of a Django request, at most `limit` bytes (default: the
    API's limit). A larger declared length is refused before anything is
    read; a body longer than it declares is cut by the server at the
    declared length, so its tail never counts."""
    limit = max_body_bytes() if limit is None else limit
    declared = request.META.get("CONTENT_LENGTH") or "0"
    try:
        declared_length = int(declared)
    except ValueError:
        raise ApiError(
            [error("The Content-Length header is not a number.", field="Content-Length")]
        ) from None
    if declared_length > limit:
        raise PayloadTooLarge.over(limit)
    try:
        raw = request.body
    except RequestDataTooBig:
        raise PayloadTooLarge.over(limit) from None
    if len(raw) > limit:
        raise PayloadTooLarge.over(limit)
    return raw


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes | str, *, field: str = "") -> Any:
    """JSON text → a JSON value, or ApiError (400) with every problem. `field`
    names where the text came from (a query parameter holding JSON); the
    default is the request body."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        data = json.loads(text, parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise ApiError([error("The request body is not UTF-8 text.", field=field or "body")]) from None
    except (ValueError, RecursionError) as exc:
        where = f"{field} is" if field else "The request body is"
        raise ApiError([error(f"{where} not valid JSON: {exc}", field=field or "body")]) from None
    if not _BAD_ESCAPE.search(text) and not _BAD_CHARACTER.search(text):
        return data
    problems = text_problems(data)
    if problems:
        for problem in problems:
            problem["field"] = ".".join(part for part in (field, problem["field"]) if part)
        raise ApiError(problems)
    return data


def text_problems(data: Any) -> list[dict[str, Any]]:
    """Strings of a decoded JSON value that text cannot hold, each named by
    its path (`events.0.payload.note`). The offending string is never
    echoed: a lone surrogate cannot even be encoded into the answer."""
    problems: list[dict[str, Any]] = []
    stack: list[tuple[str, Any]] = [("", data)]
    while stack and len(problems) < MAX_REPORTED:
        path, item = stack.pop()
        if isinstance(item, str):
            if problem := _character_problem(item):
                problems.append(error(problem, field=path))
        elif isinstance(item, dict):
            for key, value in item.items():
                if problem := _character_problem(key):
                    problems.append(error(f"a key {problem}", field=path))
                    continue
                stack.append((f"{path}.{key}" if path else key, value))
        elif isinstance(item, list):
            stack.extend(
                (f"{path}.{index}" if path else str(index), value) for index, value in enumerate(item)
            )
    # The walk is depth-first from the end: report in document order.
    return sorted(problems, key=lambda problem: problem["field"])


def _character_problem(text: str) -> str | None:
    found = _BAD_CHARACTER.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "contains the NUL character (\\u0000), which text may not hold."
    return "contains a lone UTF-16 surrogate (such as \\ud800), which is not valid Unicode."


class LimitedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        limit = max_body_bytes()
        if request is not None:
            raw = read_body(request, limit=limit)
        else:
            raw = stream.read(limit + 1)
            if len(raw) > limit:
                raise PayloadTooLarge.over(limit)
        return parse_json(raw)
