"""Django app config: the messenger's management command and its glue to the settings store."""
from django.apps import AppConfig


class MessengerConfig(AppConfig):
    name = "messenger"
    verbose_name = "Service messenger"
