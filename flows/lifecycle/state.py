"""The statuses a flow's lifecycle reasons about and the small steps every
lifecycle service shares: lock the flow's row, move its status through a
django-fsm transition (refused with a LifecycleError naming the statuses it
is allowed from, never ignored), save it, stop a version.

Every service in flows/lifecycle/ runs in one transaction, takes a row lock on
the flow where it changes its state (two admins clicking at once queue instead
of racing), and writes an audit entry."""

from __future__ import annotations

from typing import Any

from django.utils.timezone import now
from django_fsm import TransitionNotAllowed

from flows.errors import LifecycleError
from flows.models import Flow, FlowVersion, Run

Status = Flow.Status

# Statuses of a flow that was never launched: its draft is all there is, and
# its status follows the draft's validity (draft <-> ready).
NEVER_LAUNCHED = (Status.DRAFT, Status.READY)
LIVE = (Status.ACTIVE, Status.PAUSED)
# The draft may be written in these statuses. Not while launching (the draft
# is being frozen), testing (the draft *is* the test version; stop the test to
# edit), creating_draft (transient) or archived (final).
DRAFT_WRITABLE = (Status.DRAFT, Status.READY, Status.ACTIVE, Status.PAUSED)
IN_FLIGHT = (Run.Status.ACTIVE, Run.Status.WAITING)
FLOW_STOPPED = "flow_stopped"

SETTINGS_FIELDS = (
    "timezone",
    "launch_limit_mode",
    "launch_limit_period",
    "launch_limit_max_total",
    "start_at",
    "end_at",
)


def allowed_from(method_name: str) -> list[str]:
    meta = getattr(Flow, method_name)._django_fsm
    return [Status(source).value for source in meta.transitions]


def refused(verb: str, flow: Flow, allowed: list[str] | tuple[str, ...]) -> LifecycleError:
    allowed_text = ", ".join(Status(value).value for value in allowed)
    return LifecycleError(f"Cannot {verb} a flow that is {flow.status} (allowed from: {allowed_text})")


def transition(flow: Flow, method_name: str, verb: str, **kwargs: Any) -> None:
    try:
        getattr(flow, method_name)(**kwargs)
    except TransitionNotAllowed:
        raise refused(verb, flow, allowed_from(method_name)) from None


def lock_flow(flow: Flow | int) -> Flow:
    """The flow's row, locked until the transaction ends, read fresh: the
    caller's instance may be stale (and a protected FSM field cannot be
    refreshed in place)."""
    pk = flow if isinstance(flow, int) else flow.pk
    try:
        return Flow.objects.select_for_update().get(pk=pk)
    except Flow.DoesNotExist:
        raise LifecycleError(f"Flow {pk} does not exist") from None


def save_flow(flow: Flow, *fields: str) -> None:
    flow.updated_at = now()
    flow.save(update_fields=["status", "updated_at", *fields])


def user_or_none(user):
    # AnonymousUser (an API key request) and None both mean "nobody in particular".
    return user if user is not None and getattr(user, "pk", None) else None


def errors_message(action: str, errors: list[dict]) -> str:
    count = len(errors)
    return f"The draft has {count} error{'s' if count != 1 else ''} and cannot be {action}"


def stop_version(version_id: int | None, *, at) -> None:
    if version_id is not None:
        FlowVersion.objects.filter(pk=version_id, stopped_at__isnull=True).update(
            stopped_at=at, next_fire_at=None, updated_at=at
        )
