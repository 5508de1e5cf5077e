from django.apps import AppConfig


class AuditConfig(AppConfig):
    # The audit log every app writes (models.py, log.py). Part of the kernel:
    # it knows its subjects only through ContentType, never an app's models.
    name = "maestra.audit"
    label = "audit"
    verbose_name = "Audit"
