"""Django app config for the administration core (it owns the custom permissions)."""
from django.apps import AppConfig


class AdministrationConfig(AppConfig):
    name = "administration"
    label = "administration"
    verbose_name = "Administration"
