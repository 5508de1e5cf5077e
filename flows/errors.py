"""The domain errors of flows: a malformed document, a lifecycle action the
flow's state refuses, a version that does not exist, an audience that
cannot be selected. A leaf module (it imports only the kernel); the API
answers each with its status (maestra/api/errors.py)."""

from __future__ import annotations

from typing import Any

from maestra.errors import ApplicationError, error


class DocumentError(ApplicationError):
    """A malformed document. `errors`: [{"field": "nodes.3.config", "message": ...}]."""

    def __init__(self, errors: list[dict]):
        super().__init__(
            "; ".join(f"{e['field'] or 'document'}: {e['message']}" for e in errors), errors=errors
        )


class LifecycleError(ApplicationError):
    """An action refused in the flow's current state. `message` is for people
    (admin message, API 409); `errors` carries details such as the draft's
    validation errors [{"node", "field", "message"}]."""

    status = 409

    def __init__(self, message: str, errors: list | None = None):
        super().__init__(message, errors=list(errors or []))

    def api_errors(self) -> list[dict[str, Any]]:
        # The reason first, then the details (a launch refused for a draft
        # with errors lists each of them with its node).
        return [error(self.message, field="status"), *self.errors]


class DraftConflict(LifecycleError):
    """The draft changed since the editor loaded it (another tab, another
    marketer): its save is refused rather than overwriting that change."""

    def __init__(self, message: str, *, revision: int):
        super().__init__(message)
        self.revision = revision


class VersionNotFound(LifecycleError):
    """No such version of the flow (the API answers 404, not 409)."""

    status = 404

    def api_errors(self) -> list[dict[str, Any]]:
        return [error(self.message, field="version")]


class AudienceUnavailable(ApplicationError):
    """The audience preview cannot select anyone: no start node, an event
    start, a segment that does not exist or a rule that cannot be compiled."""

    status = 409
