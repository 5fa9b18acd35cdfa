"""Django app config for the feeds app."""
from django.apps import AppConfig


class FeedsConfig(AppConfig):
    name = "feeds"
    verbose_name = "Feeds"

    def ready(self) -> None:
        """The service node runs the feeds' runners: hand them to its registry."""
        from feeds.runners import feeds_runners_register

        feeds_runners_register()
