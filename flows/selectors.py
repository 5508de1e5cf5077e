"""Read-side queries about flows (HackSoft selectors): the version history,
one version and the audience preview, for the admin, the API and the
commands."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q

from customers.errors import RuleError
from customers.models import Customer, Segment
from customers.rules import to_q, validate_rule
from flows.entry import audience_q, entering_customers
from flows.errors import AudienceUnavailable, VersionNotFound
from flows.models import Flow, FlowVersion, Node
from maestra.errors import error

AUDIENCE_SAMPLE_SIZE = 20


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


# --- Audience preview -------------------------------------------------------------


def rule_audience(rule: Any) -> Q:
    """The customers a rule selects (a rule typed into the preview).
    RuleError (400) listing every problem of an invalid rule."""
    problems = validate_rule(rule, allow_event=False)
    if problems:
        raise RuleError(
            problems[0][1],
            errors=[
                error(message, field=f"rule.{where}" if where else "rule") for where, message in problems
            ],
        )
    return to_q(rule)


def schedule_audience(version: FlowVersion) -> Q:
    """The audience of the version's schedule start; AudienceUnavailable
    (409) when there is none to select."""
    start = Node.objects.filter(version=version, kind__in=("event", "schedule")).order_by("id").first()
    if start is None:
        raise AudienceUnavailable(f"version {version.number} has no start node", field="nodes")
    if start.kind != "schedule":
        raise AudienceUnavailable(
            "the flow starts on events: customers enter as their events arrive; pass ?rule= to "
            "count the customers a rule selects",
            field="rule",
            node=start.key,
        )
    try:
        return audience_q(start.config)
    except Segment.DoesNotExist:
        segment = (start.config.get("audience") or {}).get("segment")
        raise AudienceUnavailable(
            f"the audience segment {segment!r} does not exist",
            field="config.audience.segment",
            node=start.key,
        ) from None
    except (RuleError, AttributeError, TypeError) as exc:
        raise AudienceUnavailable(
            f"the audience cannot be selected: {exc}", field="config.audience", node=start.key
        ) from None


def audience_preview(
    *, version: FlowVersion, now: datetime, audience: Q | None = None, sample_size: int = 0
) -> dict[str, Any]:
    """How many customers `audience` (default: the schedule start's) holds,
    how many the launch limit keeps out, and up to `sample_size` external ids
    of those who would enter. Counted through entering_customers, the rule of
    real entry: a fire at `now` starts exactly `would_enter` runs. Two COUNTs
    and, with a sample, one LIMIT query."""
    source = "rule" if audience is not None else "schedule"
    if audience is None:
        audience = schedule_audience(version)
    matching = Customer.objects.filter(audience).count()
    entering = entering_customers(version=version, audience=audience, now=now)
    would_enter = entering.count()
    preview: dict[str, Any] = {
        "source": source,
        "version": version.number,
        "matching": matching,
        "blocked_by_launch_limit": matching - would_enter,
        "would_enter": would_enter,
    }
    if sample_size:
        # One indexed query: a marketer sees who would enter, not just how many.
        preview["sample"] = list(entering.order_by("id").values_list("external_id", flat=True)[:sample_size])
    return preview
