"""What the monitoring page lists: failed and not-sent messages and failed
steps in a period, filtered by flow, channel and reason. The filters are
django-filter FilterSets, so a bad value (a flow that is not a number) is
dropped by the form instead of reaching the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import django_filters
from django import forms
from django.db.models import Q, QuerySet

from channels.models import Message
from flows.models import NodePass, Run

# Steps that fail on the spot stop their run with one of these reasons
# (flows/engine/actions.py, channels/outbox.py ON_THE_SPOT_REASONS).
STEP_FAILURE_REASONS = {
    "promo_pool_empty": "The promo pool had no free code left.",
    "template_missing": "The template does not exist (any more).",
    "template_channel_mismatch": "The template belongs to another channel.",
    "template_error": "The template does not compile or asks a filter for too much.",
    "render_error": "The message could not be rendered (past the render budget, or data it cannot handle).",
    "customer_missing": "The customer no longer exists.",
    # flows/engine/batch.py: an unexpected error while processing the run alone (Run.error).
    "engine_error": "The engine could not process this run.",
}
SHOWS = ("messages", "steps")
# A primary key the database can hold: a bigger number is no flow at all.
MAX_ID = 2**63 - 1


class FlowIdFilter(django_filters.NumberFilter):
    # A whole number, not NumberFilter's decimal ("3.5" is no flow).
    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        super().__init__(*args, field_name="flow_id", min_value=1, max_value=MAX_ID, **kwargs)


class FailedMessageFilter(django_filters.FilterSet):
    flow = FlowIdFilter()
    channel = django_filters.CharFilter(field_name="channel")
    reason = django_filters.CharFilter(method="filter_reason")

    class Meta:
        model = Message
        fields: list[str] = []

    def filter_reason(self, queryset, name, value):
        # Reasons are "code" or "code: detail": filter on the code.
        return queryset.filter(Q(reason=value) | Q(reason__startswith=f"{value}:"))


class FailedStepFilter(django_filters.FilterSet):
    flow = FlowIdFilter()
    reason = django_filters.CharFilter(field_name="stop_reason")

    class Meta:
        model = Run
        fields: list[str] = []


@dataclass
class Failures:
    messages: QuerySet[Message]
    steps: QuerySet[Run]
    # The filters as understood (a value the form refused is left out).
    flow: int | None
    channel: str
    reason: str
    show: str


def failures(params, *, since: datetime, until: datetime) -> Failures:
    """The failed and not-sent messages created in [since, until) and the
    runs stopped by a failed step in it, filtered by `params` (flow,
    channel, reason; `show` picks the list a page shows first)."""
    messages = FailedMessageFilter(
        params,
        queryset=Message.objects.filter(
            status__in=[Message.Status.FAILED, Message.Status.NOT_SENT],
            created_at__gte=since,
            created_at__lt=until,
        ),
    )
    steps = FailedStepFilter(
        params,
        queryset=Run.objects.filter(
            status=Run.Status.STOPPED,
            stop_reason__in=list(STEP_FAILURE_REASONS),
            ended_at__gte=since,
            ended_at__lt=until,
        ),
    )
    messages.is_valid()  # runs the form: a value it refuses is absent from cleaned_data
    understood = messages.form.cleaned_data
    show = params.get("show") or "messages"
    return Failures(
        messages=messages.qs,
        steps=steps.qs,
        flow=understood.get("flow"),
        channel=understood.get("channel") or "",
        reason=understood.get("reason") or "",
        show=show if show in SHOWS else "messages",
    )


def attach_step_errors(runs: list[Run]) -> None:
    """The error text of each failed step: the failed message's reason where a
    send failed on the spot, the error the engine kept on the run
    (engine_error), else what the reason code means. Two queries for the page."""
    run_ids = [run.pk for run in runs]
    details = {}
    for run_id, node_key, text in (
        Message.objects.filter(run_id__in=run_ids, status=Message.Status.FAILED)
        .order_by("id")
        .values_list("run_id", "node_key", "reason")
    ):
        details.setdefault(run_id, (node_key, text))
    stopped_at = {}
    for run_id, node_key in (
        NodePass.objects.filter(run_id__in=run_ids).exclude(stop_reason="").values_list("run_id", "node_key")
    ):
        stopped_at[run_id] = node_key
    for run in runs:
        node_key, text = details.get(run.pk, (None, ""))
        run.failed_node = stopped_at.get(run.pk) or node_key or run.node_key
        run.error_text = text or run.error or STEP_FAILURE_REASONS.get(run.stop_reason, run.stop_reason)
