"""The base of every domain error, and the shape of one error item.

Services raise subclasses of ApplicationError (customers/errors.py,
flows/errors.py, channels' own); the one exception handler of the REST API
(maestra/api/errors.py) answers each with its `status` and `api_errors()`,
so the kernel never needs to know which app raised what. Commands and the
admin read `message` and `errors` the same way.

An error item is {"index"?, "node"?, "field", "message"} (SPEC §11).
"""

from __future__ import annotations

from typing import Any


def error(message: str, *, field: str = "", **extra: Any) -> dict[str, Any]:
    """One error item: `extra` carries "index" (an item of a batch) or
    "node" (a flow node's key)."""
    return {**extra, "field": field, "message": str(message)}


class ApplicationError(Exception):
    """A domain error: bad input, or a state that forbids the action.

    `status` is the HTTP status the API answers with; `field` the item's
    field when the error names no list of its own. `errors` are the details
    (already error items); `api_errors()` is the list the API sends, which a
    subclass may build differently (a status line before the details, say)."""

    status: int = 400
    field: str = ""

    def __init__(
        self,
        message: str = "",
        *,
        errors: list[dict[str, Any]] | None = None,
        field: str | None = None,
        node: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.errors = list(errors) if errors is not None else []
        if field is not None:
            self.field = field
        self.node = node

    def api_errors(self) -> list[dict[str, Any]]:
        if self.errors:
            return self.errors
        return [error(self.message, field=self.field, **({"node": self.node} if self.node else {}))]
