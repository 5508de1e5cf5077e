from django.apps import AppConfig


class ApiConfig(AppConfig):
    # The REST API's own table: its keys and their scopes (models.py).
    name = "maestra.api"
    label = "api"
    verbose_name = "API"
    default_auto_field = "django.db.models.BigAutoField"
