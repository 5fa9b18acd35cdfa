"""Django app config for the settings store."""
from django.apps import AppConfig


class AdvancedSettingsConfig(AppConfig):
    name = "proget_web.advanced_settings"
    label = "advanced_settings"
    verbose_name = "Advanced Settings"
