"""Email engagement of a flow's steps nodes, for the statistics (SPEC §13):
per node, the email messages created in the period, how many were sent, and
the unique opens and clicks (messages opened / clicked at least once,
Message.opened_at / clicked_at, set by channels/tracking.py). One query.

Read by flows' statistics through `engagement_by_node`; `channels` knows
the flow only as the integer on its messages."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, Q
from rest_framework import serializers

from channels.models import Message


def _rate(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


def engagement_by_node(*, flow_id: int, since: datetime, until: datetime, is_test: bool = False) -> dict:
    """{node_key: {"sent", "opened", "clicked", "open_rate", "click_rate"}}
    for the nodes that wrote email messages in [since, until); rates are
    percentages of `sent` (None without any)."""
    rows = (
        Message.objects.filter(
            flow_id=flow_id, is_test=is_test, channel="email", created_at__gte=since, created_at__lt=until
        )
        .values("node_key")
        .annotate(
            sent=Count("id", filter=Q(status=Message.Status.SENT)),
            opened=Count("id", filter=Q(opened_at__isnull=False)),
            clicked=Count("id", filter=Q(clicked_at__isnull=False)),
        )
        .order_by()
    )
    return {
        row["node_key"]: {
            "sent": row["sent"],
            "opened": row["opened"],
            "clicked": row["clicked"],
            "open_rate": _rate(row["opened"], row["sent"]),
            "click_rate": _rate(row["clicked"], row["sent"]),
        }
        for row in rows
    }


class EngagementSerializer(serializers.Serializer):
    sent = serializers.IntegerField(help_text="email messages of the node sent (created in the period)")
    opened = serializers.IntegerField(help_text="unique opens: messages opened at least once")
    clicked = serializers.IntegerField(help_text="unique clicks: messages with a link clicked")
    open_rate = serializers.FloatField(allow_null=True, help_text="% of sent")
    click_rate = serializers.FloatField(allow_null=True, help_text="% of sent")
