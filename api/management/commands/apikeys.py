"""`manage.py apikeys create NAME --owner USER --scope S [--scope S] [--expires-days N] | list | revoke ID`.

An interface to api_keys.keys: `create` prints the key once (on stdout, nothing else goes there), `list` never
shows keys, only ids. Exit non-zero with one clear line on failure.
"""
from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from api_keys.keys import ApiKeyError, api_key_create, api_key_revoke, api_keys_list
from api_keys.models import SCOPE_NAMES
from node_base.cli import ActionCommand


class Command(ActionCommand):
    help = "Create, list and revoke API keys."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a key and print it (shown once)")
        create.add_argument("name")
        create.add_argument("--owner", required=True, help="user name of the key's owner")
        create.add_argument("--scope", action="append", required=True, choices=SCOPE_NAMES, dest="scopes",
                            help="a scope the key holds (repeat for several)")
        create.add_argument("--expires-days", type=int, default=None, help="days until the key expires")
        sub.add_parser("list", help="every key with its scopes and last use (never the key itself)")
        sub.add_parser("revoke", help="revoke a key by id").add_argument("id", type=int)

    expected = (ApiKeyError,)

    def _create(self, *, name: str, owner: str, scopes: list[str], expires_days: int | None, **_: object) -> None:
        user = get_user_model().objects.filter(**{get_user_model().USERNAME_FIELD: owner}).first()
        if user is None:
            raise CommandError(f"no user called {owner!r}")
        if expires_days is not None and expires_days < 1:
            raise CommandError("--expires-days must be at least 1")
        expires_at = timezone.now() + timedelta(days=expires_days) if expires_days else None
        issued = api_key_create(name=name, owner=user, scopes=scopes, expires_at=expires_at)
        self.stderr.write(f"API key {issued.key.id} created; copy it now, it is not shown again:")
        self.stdout.write(issued.token)

    def _list(self, **_: object) -> None:
        now = timezone.now()
        for key in api_keys_list():
            state = "revoked" if key.revoked else "expired" if key.expired(now=now) else "active"
            used = f"{key.last_used_at:%Y-%m-%d %H:%M} from {key.last_used_ip}" if key.last_used_at else "never used"
            expires = f"expires {key.expires_at:%Y-%m-%d}" if key.expires_at else "no expiry"
            self.stdout.write(f"{key.id:>5}  {key.name:<24} {key.owner.get_username():<16} {state:<8} "
                              f"{','.join(key.scopes)}  {expires}  {used}")

    def _revoke(self, *, id: int, **_: object) -> None:
        key = api_key_revoke(key_id=id)
        if key is None:
            raise CommandError(f"no API key {id}")
        self.stdout.write(f"API key {key.id} ({key.name}) revoked")
