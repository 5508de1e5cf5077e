from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    # Not Django Channels: the delivery channels (email, SMS, push, webhook).
    name = "channels"
    default_auto_field = "django.db.models.BigAutoField"
