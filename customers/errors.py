"""The domain errors of customers: what its services and the rule language
refuse. A leaf module (it imports only the kernel), so any layer can catch
them; the API answers each with its status (maestra/api/errors.py)."""

from __future__ import annotations

from typing import Any

from maestra.errors import ApplicationError, error


class CustomerServiceError(ApplicationError):
    """A domain error: bad input, or a state that forbids the write.

    `errors` is a list of {"index"?, "field", "message"}, the shape of the
    REST API's error body, so a view can pass it through unchanged."""

    def __init__(self, message: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message, errors=errors if errors is not None else [error(message)])


class InvalidInput(CustomerServiceError):
    """Some items of a batch are invalid; nothing of the batch was written."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        first = errors[0]
        where = f"item {first['index']}, " if "index" in first else ""
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{where}{first['field']}: {first['message']}{more}", errors=errors)


class UnknownPromoPool(CustomerServiceError):
    status = 404

    def __init__(self, slug: str) -> None:
        message = f"promo pool {slug!r} does not exist"
        super().__init__(message, errors=[error(message, field="pool")])


class UnknownSegment(CustomerServiceError):
    status = 404

    def __init__(self, slug: str) -> None:
        message = f"segment {slug!r} does not exist"
        super().__init__(message, errors=[error(message, field="segment")])


class SegmentNotStatic(CustomerServiceError):
    status = 409

    def __init__(self, slug: str) -> None:
        message = f"segment {slug!r} is rule-based; only static segments have members to add or remove"
        super().__init__(message, errors=[error(message, field="segment")])


class RuleError(ApplicationError, ValueError):
    """A rule that cannot be evaluated or compiled (invalid, cyclic segments,
    event paths where there is no event). Still a ValueError, as callers
    that parse input expect."""

    field = "rule"
