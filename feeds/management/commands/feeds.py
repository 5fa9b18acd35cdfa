"""`manage.py feeds create NAME [--description D] [--drop-path P] [--keep N] [--dry-run] | list | delete NAME`.

Exit 0 on success; non-zero with one clear line (e.g. why a name is refused) on failure.
"""
from __future__ import annotations

from django.core.management.base import CommandParser

from feeds.selectors import feeds_list
from feeds.services import FeedError, feed_create, feed_delete
from node_base.cli import ActionCommand


class Command(ActionCommand):
    help = "Create, list and delete package feeds."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a PyPI feed and its storage folder")
        create.add_argument("name")
        create.add_argument("--description", default="")
        create.add_argument("--drop-path", default="", help="absolute path of a folder to import packages from")
        create.add_argument("--keep", type=int, default=0, help="versions kept per project by retention (0: all)")
        create.add_argument("--dry-run", action="store_true", help="retention only reports what it would delete")
        sub.add_parser("list", help="the feeds, their folders and last indexing")
        sub.add_parser("delete", help="delete a feed's index (its files stay on disk)").add_argument("name")

    expected = (FeedError,)

    def _create(
        self, *, name: str, description: str, drop_path: str, keep: int, dry_run: bool, **_: object,
    ) -> None:
        feed = feed_create(name=name, description=description, drop_path=drop_path, keep_latest=keep, dry_run=dry_run)
        self.stdout.write(f"created feed {feed.name} (storage {feed.storage_path})")

    def _list(self, **_: object) -> None:
        for feed in feeds_list():
            indexed = "never indexed"
            if feed.last_indexed_at:
                indexed = f"indexed {feed.last_indexed_at:%Y-%m-%d %H:%M:%S}: {feed.last_index_result}"
            self.stdout.write(f"{feed.name:<24} {feed.storage_path}  {indexed}")

    def _delete(self, *, name: str, **_: object) -> None:
        feed = feed_delete(name=name)
        self.stdout.write(f"deleted feed {feed.name}; its files stay in {feed.storage_path}")
