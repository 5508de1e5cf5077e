from django.apps import AppConfig

from maestra.audit.actions import register_actions


class ApiConfig(AppConfig):
    # The REST API's own table: its keys and their scopes (models.py).
    name = "maestra.api"
    label = "api"
    verbose_name = "API"

    def ready(self) -> None:
        # Written by maestra/api/keys.py (which imports models: not here).
        register_actions("api_key.created", "api_key.revoked")
