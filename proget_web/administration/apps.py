"""Django app config for the administration pages (it owns the custom permissions)."""
from django.apps import AppConfig


class AdministrationConfig(AppConfig):
    name = "proget_web.administration"
    label = "administration"
    verbose_name = "Administration"
