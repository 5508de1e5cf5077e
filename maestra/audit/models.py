"""The audit log: who did what to which object, and when (pretix's
log_action). One table for every app: a flow launched, a customer erased, an
alert sent, an API key created. Entries are written by the services, inside
their own transaction (maestra/audit/log.py), and never edited."""

from __future__ import annotations

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils.timezone import now


class AuditEntryQuerySet(models.QuerySet):
    def about(self, subject: models.Model) -> AuditEntryQuerySet:
        """The entries whose subject is `subject` (also after it was deleted,
        given an unsaved instance with its old pk)."""
        subject_type = ContentType.objects.get_for_model(subject, for_concrete_model=False)
        return self.filter(subject_type=subject_type, subject_id=subject.pk)


class AuditEntry(models.Model):
    action = models.CharField(max_length=60)  # "flow.launched", "customer.erased", ...
    at = models.DateTimeField(default=now)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Who acted when no user did: "command", "system", "api key <prefix>".
    actor = models.CharField(max_length=100, blank=True)
    # The object acted on, if it has an integer key (a flow, a customer, a
    # template); an API key (a text key) is named in subject_repr and data.
    subject_type = models.ForeignKey(
        ContentType, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    subject_id = models.PositiveBigIntegerField(null=True, blank=True)
    subject = GenericForeignKey("subject_type", "subject_id")
    # Never personal data: "flow #7", "customer #42".
    subject_repr = models.CharField(max_length=200, blank=True)
    data = models.JSONField(default=dict, blank=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "audit entries"
        indexes = [
            # A subject's history (a flow's log, its last launch request).
            models.Index(fields=["subject_type", "subject_id", "at"], name="audit_subject_idx"),
            # The admin's action filter; alert de-duplication.
            models.Index(fields=["action", "at"], name="audit_action_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.action}"
