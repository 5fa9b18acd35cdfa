"""API keys: issue (shown once), authenticate a request's key, revoke, and what a request's key may do.

A key is `pgk_<id>_<secret>`; only SHA-256(secret) is stored and compared with hmac.compare_digest.
The secret is 32 random bytes, so a fast hash is enough: a slow KDF (PBKDF2, argon2) protects
low-entropy passwords against guessing, and 2**256 secrets cannot be guessed at any hashing speed.
Keys are logged by id only, never in clear.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from api_keys.models import SCOPE_NAMES, ApiKey

logger = logging.getLogger(__name__)

KEY_PREFIX = "pgk"
# 32 bytes = 256 bits of entropy: beyond brute force, which is what makes a plain SHA-256 safe here.
SECRET_BYTES = 32
HEADER = "X-ApiKey"
# HTTP basic auth user name that means "the password is an API key" (what pip and twine can send).
BASIC_USER = "api"
# Recording the last use costs a database write; once a minute per key (or a new IP) is enough to show it.
LAST_USED_RESOLUTION = timedelta(seconds=60)
# Longest key name shown on the page and in the CLI.
NAME_MAX_LENGTH = 100
# Compared against when the key id is unknown, so a miss costs the same hash and compare as a hit.
_NO_HASH = hashlib.sha256(b"").hexdigest()

FEEDS_READ = "feeds:read"
FEEDS_UPLOAD = "feeds:upload"
MESSENGER_KEY = "settings:messenger-key"
# The one scope -> permission map: what a key's owner must hold for each scope, when the key is created and at
# every request. None: any active user (every user who logs in may read feeds).
SCOPE_PERMISSIONS: dict[str, str | None] = {
    FEEDS_READ: None,
    FEEDS_UPLOAD: "feeds.upload_package",
    "feeds:reindex": "administration.reindex_feed",
    "settings:read": "administration.change_settings",  # the Advanced Settings page needs it to be seen at all
    "settings:write": "administration.change_settings",
    MESSENGER_KEY: "administration.change_settings",
    "service:read": "administration.view_service_status",
    "service:control": "administration.control_service",
    "metrics:read": "administration.view_service_status",  # the same runner and messenger state, as numbers
}


class ApiKeyError(ValueError):
    """A key that cannot be created or is refused; the message is meant for the user."""


@dataclass(frozen=True, kw_only=True)
class IssuedKey:
    key: ApiKey
    token: str  # the full key: shown once, never stored


def secret_hash(secret: str) -> str:
    """Hex SHA-256 of a key's secret part (what the database holds)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def scopes_validate(scopes: Iterable[str]) -> list[str]:
    """The scopes, deduplicated in declaration order; raises ApiKeyError for none or an unknown one."""
    wanted = set(scopes)
    unknown = wanted - set(SCOPE_NAMES)
    if unknown:
        raise ApiKeyError(f"unknown scope(s) {', '.join(sorted(unknown))} (known: {', '.join(SCOPE_NAMES)})")
    if not wanted:
        raise ApiKeyError("a key needs at least one scope")
    return [scope for scope in SCOPE_NAMES if scope in wanted]


def owner_may(owner: AbstractBaseUser, scope: str) -> bool:
    """Whether `owner` (active, holding the scope's permission) may use or hand out `scope`."""
    if scope not in SCOPE_PERMISSIONS or not owner.is_active:
        return False
    perm = SCOPE_PERMISSIONS[scope]
    return perm is None or owner.has_perm(perm)


def key_scopes_usable(key: ApiKey) -> frozenset[str]:
    """The key's scopes that its owner may still use: what the key may do now (read afresh on every request)."""
    return frozenset(scope for scope in key.scopes if owner_may(key.owner, scope))


@transaction.atomic
def api_key_create(
    *, name: str, owner: AbstractBaseUser, scopes: Iterable[str], expires_at: datetime | None = None,
) -> IssuedKey:
    """Store a new key for `owner` and return it with its token, which is never shown again."""
    name = name.strip()
    if not name or len(name) > NAME_MAX_LENGTH:
        raise ApiKeyError(f"a key needs a name of 1-{NAME_MAX_LENGTH} characters")
    if expires_at is not None and expires_at <= timezone.now():
        raise ApiKeyError("the expiry must be in the future")
    scopes = scopes_validate(scopes)
    beyond = [scope for scope in scopes if not owner_may(owner, scope)]
    if beyond:
        needs = ", ".join(f"{scope} needs {SCOPE_PERMISSIONS[scope] or 'an active user'}" for scope in beyond)
        raise ApiKeyError(f"{owner.get_username()} may not hold a key with {', '.join(beyond)}: {needs}")
    secret = base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii").rstrip("=")
    key = ApiKey.objects.create(name=name, owner=owner, scopes=scopes,
                                secret_hash=secret_hash(secret), expires_at=expires_at)
    logger.info("API key %s (%s) created for %s with scopes %s", key.id, name, owner.get_username(),
                ",".join(key.scopes))
    return IssuedKey(key=key, token=f"{KEY_PREFIX}_{key.id}_{secret}")


def api_key_revoke(*, key_id: int) -> ApiKey | None:
    """Revoke key `key_id` (at once, for every node); None when there is no such key."""
    key = ApiKey.objects.filter(id=key_id).first()
    if key is None:
        return None
    if not key.revoked:
        ApiKey.objects.filter(id=key_id).update(revoked=True, revoked_at=timezone.now())
        key.refresh_from_db()
        logger.info("API key %s revoked", key_id)
    return key


def api_keys_list() -> QuerySet[ApiKey]:
    """Every key, newest first, with its owner."""
    return ApiKey.objects.select_related("owner")


def token_split(token: str) -> tuple[int, str] | None:
    """(id, secret) of a well-formed `pgk_<id>_<secret>`, else None."""
    prefix, _, rest = token.partition("_")
    id_text, _, secret = rest.partition("_")
    if prefix != KEY_PREFIX or not id_text.isascii() or not id_text.isdigit() or len(id_text) > 18 or not secret:
        return None
    return int(id_text), secret


def api_key_authenticate(*, token: str, ip: str | None = None) -> ApiKey:
    """The active key `token` is; raises ApiKeyError saying why not (invalid, revoked, expired, owner inactive).

    Revoked/expired is only said to a caller who proved the secret; anyone else hears "invalid".
    """
    parts = token_split(token.strip())
    key = ApiKey.objects.select_related("owner").filter(id=parts[0]).first() if parts else None
    presented = secret_hash(parts[1]) if parts else _NO_HASH
    if not hmac.compare_digest(key.secret_hash if key else _NO_HASH, presented) or key is None:
        logger.info("API key refused: invalid (key id %s)", parts[0] if parts else "unparseable")
        raise ApiKeyError("invalid API key")
    now = timezone.now()
    reason = ("API key revoked" if key.revoked else "API key expired" if key.expired(now=now)
              else "the API key's owner is inactive" if not key.owner.is_active else "")
    if reason:
        logger.info("API key %s refused: %s", key.id, reason)
        raise ApiKeyError(reason)
    _last_use_record(key=key, ip=ip, now=now)
    return key


def _last_use_record(*, key: ApiKey, ip: str | None, now: datetime) -> None:
    stale = key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION
    if stale or key.last_used_ip != ip:
        ApiKey.objects.filter(id=key.id).update(last_used_at=now, last_used_ip=ip)
        key.last_used_at, key.last_used_ip = now, ip


def request_token(request: HttpRequest) -> str | None:
    """The API key a request carries: the X-ApiKey header, or basic auth as user `api` with the key as password."""
    header = request.headers.get(HEADER)
    if header is not None:
        return header
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return password if sep and user == BASIC_USER else None


def request_ip(request: HttpRequest) -> str | None:
    """The peer address (REMOTE_ADDR; forwarded headers are not trusted), or None."""
    return request.META.get("REMOTE_ADDR") or None


def request_api_key(request: HttpRequest) -> ApiKey | None:
    """The valid key the request carries; None when it carries none; ApiKeyError when it is refused.

    The outcome is kept on the request, so several checks in one request authenticate once.
    """
    cached = getattr(request, "_api_key_outcome", None)
    if cached is None:
        token = request_token(request)
        try:
            cached = (None if token is None else api_key_authenticate(token=token, ip=request_ip(request)), None)
        except ApiKeyError as exc:
            cached = (None, exc)
        request._api_key_outcome = cached  # type: ignore[attr-defined]
    key, error = cached
    if error is not None:
        raise error
    return key


def request_key_scopes(request: HttpRequest) -> frozenset[str]:
    """The valid API key's usable scopes (key_scopes_usable); empty for no key or a refused one."""
    try:
        key = request_api_key(request)
    except ApiKeyError:
        return frozenset()
    return key_scopes_usable(key) if key is not None else frozenset()


class KeyPrincipal:
    """A request's API key seen as a user by checks that take one (feeds.upload.upload_permitted).

    Never staff or superuser; holds exactly the Django permissions its usable scopes stand for (SCOPE_PERMISSIONS).
    """

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False

    def __init__(self, key: ApiKey) -> None:
        self.key = key
        self.is_active = key.owner.is_active
        self._perms = {SCOPE_PERMISSIONS[scope] for scope in key_scopes_usable(key)} - {None}

    def get_username(self) -> str:
        return api_key_actor(self.key)

    def has_perm(self, perm: str, obj: object = None) -> bool:
        return perm in self._perms


def request_key_user(request: HttpRequest) -> KeyPrincipal | None:
    """The request's valid API key as a KeyPrincipal, or None (no key, or a refused one)."""
    try:
        key = request_api_key(request)
    except ApiKeyError:
        return None
    return KeyPrincipal(key) if key is not None else None


def api_key_actor(key: ApiKey) -> str:
    """Who acted, for audit trails and trigger rows: the owner and the key id (never the key)."""
    return f"{key.owner.get_username()} (API key {key.id})"[:150]
