"""Builders for what a running flow leaves behind: runs, node passes and
messages, written straight to the tables for the tests of what reads them
(the admin pages, the API's activity and statistics, the lifecycle's stops)."""

from channels.models import Message
from customers.models import Customer
from flows.models import Flow, NodePass, Run


def run_in(
    flow: Flow, customer: Customer, *, clock, status: str = "waiting", node_key: str = "day", **fields
) -> Run:
    """A run of the flow's live version unless `version` says otherwise."""
    if "version" not in fields and "version_id" not in fields:
        fields["version"] = flow.live_version
    return Run.objects.create(
        flow=flow, customer=customer, status=status, node_key=node_key, clock=clock, **fields
    )


def pass_through(run: Run, node_key: str, kind: str, pass_no: int, **fields) -> NodePass:
    """The run's pass through one node, recorded under the run's version."""
    return NodePass.objects.create(
        run=run, version=run.version, node_key=node_key, kind=kind, pass_no=pass_no, **fields
    )


def message_to(customer: Customer, *, flow: Flow | None = None, run: Run | None = None, **fields) -> Message:
    """A message of the "confirm" email template unless the fields say otherwise;
    `flow` and `run` fill in the ids the message keeps."""
    fields.setdefault("template_slug", "confirm")
    fields.setdefault("channel", "email")
    if flow is not None:
        fields["flow_id"] = flow.pk
    if run is not None:
        fields["run_id"] = run.pk
    return Message.objects.create(customer=customer, **fields)
