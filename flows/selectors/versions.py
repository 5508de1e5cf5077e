"""The version history of a flow and one version by name ("live", "draft")
or number, for the admin, the API, the commands and the lifecycle's export."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from flows.errors import VersionNotFound
from flows.models import Flow, FlowVersion


def version_history(*, flow: Flow) -> list[dict]:
    """Every version of the flow, newest first (one query)."""
    username = f"launched_by__{get_user_model().USERNAME_FIELD}"
    rows = flow.versions.order_by("-number").values(
        "id",
        "number",
        "state",
        "is_test",
        "created_at",
        "launched_at",
        "stopped_at",
        username,
        "errors",
    )
    return [
        {
            "id": row["id"],
            "number": row["number"],
            "state": row["state"],
            "is_test": row["is_test"],
            "is_live": row["id"] == flow.live_version_id,
            "created_at": row["created_at"],
            "launched_at": row["launched_at"],
            "stopped_at": row["stopped_at"],
            "launched_by": row[username],
            "errors": len(row["errors"] or []),
        }
        for row in rows
    ]


def get_version(*, flow: Flow, number: str | int) -> FlowVersion:
    """One version of the flow: "live", "draft" or its number (an int or a
    string of digits, as commands and query strings pass it)."""
    if number == "live":
        version = (
            FlowVersion.objects.filter(pk=flow.live_version_id).first() if flow.live_version_id else None
        )
        if version is None:
            raise VersionNotFound(f"Flow {flow.pk} has no live version")
        return version
    if number == "draft":
        version = flow.draft
        if version is None:
            raise VersionNotFound(f"Flow {flow.pk} has no draft")
        return version
    if isinstance(number, str) and number.isascii() and number.isdigit():
        number = int(number)
    if not isinstance(number, int) or isinstance(number, bool):
        raise VersionNotFound(f"Unknown version {number!r}: use live, draft or a version number")
    version = flow.versions.filter(number=number).first()
    if version is None:
        raise VersionNotFound(f"Flow {flow.pk} has no version {number}")
    return version
