"""JSON bodies with a size limit. DRF reads the request stream itself, so
Django's DATA_UPLOAD_MAX_MEMORY_SIZE never applies to it: without this a
client could make a worker parse a body of any size."""

from __future__ import annotations

import json

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from maestra.api.errors import PayloadTooLarge, error


def max_body_bytes() -> int:
    return settings.MAESTRA_API_MAX_BODY_BYTES


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


class LimitedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = max_body_bytes()
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        too_large = PayloadTooLarge(
            [error(f"The request body is larger than the limit of {limit} bytes.", field="body")]
        )
        try:
            if declared and int(declared) > limit:
                raise too_large
        except ValueError:
            pass
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise too_large
        try:
            data = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
        except UnicodeDecodeError:
            raise ParseError("The request body is not UTF-8 text.") from None
        except (ValueError, RecursionError) as exc:
            raise ParseError(f"The request body is not valid JSON: {exc}") from None
        if _has_nul(data):
            # PostgreSQL cannot store U+0000 in text or jsonb: refuse it here as
            # bad input rather than fail at the database.
            raise ParseError(
                "The request body contains the NUL character (\\u0000), which text may not hold."
            )
        return data


def _has_nul(data) -> bool:
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
