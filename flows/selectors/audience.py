"""The audience preview: how many customers a flow's schedule start (or a
rule typed into the preview) selects, how many its launch limit keeps out and
who would enter, counted by the rules of real entry (flows.engine.entry)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Q

from customers.errors import RuleError
from customers.models import Customer, Segment
from customers.rules import to_q, validate_rule
from flows.engine.entry import entering_customers
from flows.errors import AudienceUnavailable
from flows.models import Flow, FlowVersion, Node
from flows.nodes.schedule.firing import audience_q
from flows.selectors.versions import get_version
from maestra.api.parsers import parse_json
from maestra.errors import error

AUDIENCE_SAMPLE_SIZE = 20


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


def flow_audience_preview(
    *,
    flow: Flow,
    now: datetime,
    version: str | int | None = None,
    rule: str | None = None,
    sample: bool = False,
) -> dict[str, Any]:
    """The audience preview of one flow as the API and the admin's Audience
    page show it: `version` "live", "draft" or a number (default: the draft,
    else the live version); `rule` a rule as JSON text to count instead of
    the schedule start's audience. VersionNotFound (404), a JSON or rule
    error (400) or AudienceUnavailable (409) otherwise."""
    number = version or ("draft" if flow.draft else "live")
    chosen = get_version(flow=flow, number=number)
    audience = None
    if rule is not None:
        # The API's JSON reader: NaN, NUL and lone surrogates are refused
        # here like in a request body, not at the database.
        audience = rule_audience(parse_json(rule, field="rule"))
    return audience_preview(
        version=chosen, now=now, audience=audience, sample_size=AUDIENCE_SAMPLE_SIZE if sample else 0
    )
