"""The one error contract of the REST API (SPEC §11), and the one exception
handler that maps every error to it:

    {"errors": [{"index"?, "node"?, "field", "message"}, ...]}

Domain errors raised by the services are ApplicationErrors (maestra/errors.py):
each says its own status and list, so this handler knows no app. DRF's own
errors (validation, auth, throttling, parsing) are flattened into the same
shape. Nothing here ever answers with HTML.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from maestra.errors import ApplicationError, error

__all__ = ["ApiError", "Conflict", "NotFound", "PayloadTooLarge", "error", "exception_handler", "flatten"]

log = logging.getLogger(__name__)


class ApiError(exceptions.APIException):
    """An error a view raises on purpose, with its list of errors."""

    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, errors: list[dict[str, Any]], *, status_code: int | None = None):
        self.errors = errors
        if status_code is not None:
            self.status_code = status_code
        super().__init__(detail=errors[0]["message"] if errors else "error")


class Conflict(ApiError):
    status_code = status.HTTP_409_CONFLICT


class NotFound(ApiError):
    status_code = status.HTTP_404_NOT_FOUND


class PayloadTooLarge(ApiError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE

    @classmethod
    def over(cls, limit: int) -> PayloadTooLarge:
        return cls([error(f"The request body is larger than the limit of {limit} bytes.", field="body")])


def flatten(detail: Any, prefix: str = "") -> list[dict[str, Any]]:
    """DRF's nested error detail ({field: [msg]}, lists per item) as a flat
    list of {"field": "a.0.b", "message"}."""
    if isinstance(detail, dict):
        items: list[dict[str, Any]] = []
        for key, value in detail.items():
            name = "" if key in ("non_field_errors", "detail") else str(key)
            items += flatten(value, f"{prefix}.{name}" if prefix and name else prefix or name)
        return items
    if isinstance(detail, list):
        if all(isinstance(item, str) for item in detail):
            return [error(item, field=prefix) for item in detail]
        items = []
        for index, value in enumerate(detail):
            if value:  # a list of per-item errors has empty entries for valid items
                items += flatten(value, f"{prefix}.{index}" if prefix else str(index))
        return items
    return [error(str(detail), field=prefix)]


def _response(errors: list[dict[str, Any]], code: int, headers: dict | None = None) -> Response:
    # Imported here: rest_framework.views reads DEFAULT_PARSER_CLASSES when it
    # is imported, and the parser (maestra.api.parsers) imports this module.
    from rest_framework.views import set_rollback

    set_rollback()
    return Response({"errors": errors}, status=code, headers=headers)


def exception_handler(exc: Exception, context: dict) -> Response:
    if isinstance(exc, RequestDataTooBig):
        # DRF reads request.body before any parser runs; Django refuses a
        # declared length over DATA_UPLOAD_MAX_MEMORY_SIZE (= the API's limit)
        # before reading anything.
        exc = PayloadTooLarge.over(settings.MAESTRA_API_MAX_BODY_BYTES)
    if isinstance(exc, ApiError):
        return _response(exc.errors, exc.status_code)
    if isinstance(exc, ApplicationError):
        return _response(exc.api_errors(), exc.status)
    if isinstance(exc, Http404):
        return _response([error(str(exc) or "Not found.")], status.HTTP_404_NOT_FOUND)
    if isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    if isinstance(exc, exceptions.APIException):
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = f"{int(exc.wait)}"
        return _response(flatten(exc.detail), exc.status_code, headers)
    # A bug, not bad input: logged with its traceback, answered in JSON all the same.
    log.exception("Unhandled error in %s", context.get("view").__class__.__name__)
    return _response([error("Internal error; it has been logged.")], status.HTTP_500_INTERNAL_SERVER_ERROR)
