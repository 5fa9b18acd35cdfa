"""Django app config for the web project."""
from django.apps import AppConfig


class ProgetWebConfig(AppConfig):
    name = "proget_web"
    verbose_name = "Web node"

    def ready(self) -> None:
        """/metrics shows this process's status link: register its collector in the process's registry."""
        from node_base.metrics import REGISTRY
        from proget_web.status.metrics import StatusLinkCollector

        REGISTRY.register(StatusLinkCollector())
