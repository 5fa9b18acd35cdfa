"""Django app config for the service node."""
from django.apps import AppConfig


class IndexerConfig(AppConfig):
    name = "indexer"
    verbose_name = "Service node"

    def ready(self) -> None:
        """A takeover fails the triggers earlier primaries left running, in the lease's own transaction."""
        from cluster.lease import on_takeover
        from indexer.triggers import triggers_recover_fenced

        on_takeover(triggers_recover_fenced)
