"""Writing the audit log. Each app registers the actions it writes
(maestra/audit/actions.py, in its AppConfig.ready); an unknown action is a
programming error, refused here rather than stored under a name nobody
filters for."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models

from maestra.audit.actions import registered_actions
from maestra.audit.models import AuditEntry


def entry(
    action: str,
    *,
    user=None,
    actor: str = "",
    subject: models.Model | None = None,
    subject_repr: str = "",
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """An unsaved entry (log_many writes many in one statement)."""
    if action not in registered_actions():
        raise ValueError(f"Unknown audit action {action!r}")
    # Anonymous users (the API's key-authenticated requests, a command) leave
    # the user empty rather than pointing at a row that does not exist.
    if user is not None and not getattr(user, "pk", None):
        user = None
    fields: dict[str, Any] = {}
    if subject is not None:
        fields["subject_type"] = ContentType.objects.get_for_model(subject, for_concrete_model=False)
        fields["subject_id"] = subject.pk
        subject_repr = subject_repr or f"{subject._meta.verbose_name} #{subject.pk}"
    if at is not None:
        fields["at"] = at
    return AuditEntry(
        action=action, user=user, actor=actor, subject_repr=subject_repr, data=data or {}, **fields
    )


def log(action: str, **kwargs: Any) -> AuditEntry:
    """Write one entry (see `entry` for the arguments)."""
    audit_entry = entry(action, **kwargs)
    audit_entry.save()
    return audit_entry


def log_many(entries: Iterable[AuditEntry]) -> list[AuditEntry]:
    """Write entries made by `entry` in one statement (an erasure of many customers)."""
    return AuditEntry.objects.bulk_create(list(entries), batch_size=2000)
