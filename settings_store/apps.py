"""Django app config for the settings store."""
from django.apps import AppConfig


class AdvancedSettingsConfig(AppConfig):
    name = "settings_store"
    label = "advanced_settings"
    verbose_name = "Advanced Settings"
