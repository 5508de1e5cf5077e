"""The naive reference: S1's first stage written the way a typical Django app
would, one customer at a time with ORM calls, on a sample of the audience.
run.py extrapolates its rate to the full audience and labels it so.

It does the same things as the engine's entry + first steps group (launch
limit check, run, node passes, consent check, the same template rendering
through channels.rendering, the outbox row, the launch record, the run moved
on to the wait) so the only difference is the shape of the database work:
about ten queries per customer, each customer in its own transaction.

    python bench/naive.py --flow F --version V --segment SLUG --sample 2000 --at ISO --out FILE
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Meter, QueryCounter, parse_iso, setup_django, write_result


def run(args) -> dict:
    import time_machine
    from django.db import transaction
    from django.utils import timezone

    from channels.models import Message, Template
    from channels.rendering import build_context, render_template
    from customers.models import SegmentMembership, Subscription
    from flows.models import LaunchRecord, NodePass, Run

    period = timedelta(days=7)
    counter = QueryCounter().install()
    with time_machine.travel(parse_iso(args.at), tick=True), Meter() as meter:
        queries = counter.count
        template = Template.objects.get(slug="bench-hello")
        memberships = (
            SegmentMembership.objects.filter(segment__slug=args.segment)
            .select_related("customer")
            .order_by("id")[: args.sample]
        )

        def record_pass(run: Run, node_key: str, kind: str, pass_no: int, now) -> None:
            NodePass.objects.create(
                run=run,
                version_id=args.version,
                node_key=node_key,
                kind=kind,
                pass_no=pass_no,
                port="next",
                exited_at=now,
            )

        done = 0
        for membership in memberships:
            customer = membership.customer
            now = timezone.now()
            with transaction.atomic():
                record = LaunchRecord.objects.filter(flow_id=args.flow, customer=customer).first()
                if record and record.last_step_at and record.last_step_at > now - period:
                    continue
                run = Run.objects.create(
                    flow_id=args.flow,
                    version_id=args.version,
                    customer=customer,
                    status=Run.Status.ACTIVE,
                    node_key="start",
                    due_at=now,
                    clock=now,
                    node_clock=now,
                )
                record_pass(run, "start", "schedule", 0, now)
                subscription = Subscription.objects.filter(customer=customer, channel="email").first()
                if subscription and subscription.status == Subscription.Status.SUBSCRIBED and customer.email:
                    context = {"flow": {"name": "naive", "id": args.flow}}
                    rendered = render_template(
                        template=template, context=build_context(customer=customer, extra=context)
                    )
                    rendered["to"] = customer.email
                    Message.objects.create(
                        customer=customer,
                        template=template,
                        template_slug=template.slug,
                        channel="email",
                        flow_id=args.flow,
                        run_id=run.id,
                        node_key="hello",
                        step_index=0,
                        pass_no=1,
                        rendered=rendered,
                        context=context,
                    )
                LaunchRecord.objects.update_or_create(
                    flow_id=args.flow,
                    customer=customer,
                    defaults={"launches": (record.launches + 1) if record else 1, "last_step_at": now},
                    create_defaults={"launches": 1, "first_launched_at": now, "last_step_at": now},
                )
                record_pass(run, "hello", "steps", 1, now)
                run.status = Run.Status.WAITING
                run.node_key = "day"
                run.seq = 2
                run.launched = True
                run.due_at = now + timedelta(days=1)
                run.save()
            done += 1
    return {**meter.result(), "queries": counter.count - queries, "counts": {"customers": done}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flow", type=int, required=True)
    parser.add_argument("--version", type=int, required=True)
    parser.add_argument("--segment", required=True)
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--at", required=True)
    parser.add_argument("--out")
    args = parser.parse_args()
    setup_django()
    write_result(args.out, run(args))


if __name__ == "__main__":
    main()
