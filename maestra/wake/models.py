from django.db import models


class WakeFlag(models.Model):
    """One row per target: the coalescing flag of maestra.wake.core. Written
    with raw SQL only (one upsert per wake, one claim per run); the model is
    here for the migration and for looking at it."""

    target = models.CharField(max_length=50, primary_key=True)
    # The last wake that queued a run; for looking at only.
    requested_at = models.DateTimeField()
    # Set when a wake queued a run that has not claimed the flag yet (NULL:
    # none pending). A new wake queues nothing while it is set, unless it is
    # older than MAESTRA_WAKE_COALESCE_SECONDS (that run was lost).
    queued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "maestra_wake_flag"

    def __str__(self) -> str:
        return self.target
