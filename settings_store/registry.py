"""The one table of settings: name, type, default, description, validator, and whether a change applies live.

Values are text in the database; this module turns text into typed values and validates it.
An empty value means "use the default", except for a setting that needs a value (the messenger key).
"""
from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from dataclasses import dataclass, field

from messenger.allowlist import parse_allowed_ips
from messenger.endpoint import parse_endpoint
from messenger.key_strength import parse_strong_key
from node_base.paths import packages_root_check


class Kind(enum.Enum):
    TEXT = "text"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    SECRET = "secret"


class SettingValueError(ValueError):
    """A value that does not fit its setting; the message is shown to the user as is."""


class UnknownSetting(KeyError):
    """No setting has that name."""

    def __str__(self) -> str:
        return f"unknown setting {self.args[0]!r} (see 'manage.py settings list')"


Validator = Callable[[str], object]

# The longest grace a rotated messenger key can get; its replaced values are kept that long.
MESSENGER_KEY_GRACE_MAX_SECONDS = 3600

# Written booleans are spelled true or false (any case, stored lowercase), so the page's checkbox, the CLI and the
# API agree; the older spellings below are still read, so a value stored before keeps its meaning.
BOOLEAN_SPELLINGS = ("true", "false")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


@dataclass(frozen=True, kw_only=True)
class Setting:
    name: str
    kind: Kind
    default: str
    description: str
    live: bool
    validator: Validator | None = None
    minimum: int | None = None
    maximum: int | None = None
    hidden: bool = False
    choices: tuple[str, ...] = field(default=())
    # > 0: a replaced value is kept that long (models.RetiredValue), e.g. for a key rotation's grace.
    keep_replaced_seconds: int = 0
    # Set: an empty value is refused with this hint instead of restoring the default.
    needs_value: str = ""

    def clean(self, value: str) -> str:
        """The stripped `value` once it is acceptable ("" restores the default); raise SettingValueError if not.

        Stricter than parse() for booleans: only true or false is written (parse() also reads yes/no/on/off/1/0).
        """
        text = value.strip()
        if self.kind is Kind.BOOLEAN and text:
            text = text.lower()
            if text not in BOOLEAN_SPELLINGS:
                raise SettingValueError(f"{self.name} must be true or false")
        if text:
            self.parse(text)
        elif self.needs_value:
            raise SettingValueError(f"{self.name} needs a value: {self.needs_value}")
        return text

    def parse(self, text: str) -> str | int | bool:
        """Validate `text` (already stripped, non-empty) and return the typed value."""
        if self.choices and text not in self.choices:
            raise SettingValueError(f"{self.name} must be one of {', '.join(self.choices)}")
        if self.kind is Kind.INTEGER:
            return self._parse_int(text)
        if self.kind is Kind.BOOLEAN:
            lowered = text.lower()
            if lowered in _TRUE | _FALSE:
                return lowered in _TRUE
            raise SettingValueError(f"{self.name} must be true or false")
        if self.validator is not None:
            try:
                self.validator(text)
            except ValueError as exc:
                raise SettingValueError(str(exc)) from None
        return text

    def is_on(self, text: str) -> bool:
        """Whether stored `text` ("" for the default) turns this boolean setting on; False for a broken value."""
        return (text or self.default).strip().lower() in _TRUE

    def _parse_int(self, text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise SettingValueError(f"{self.name} must be a whole number") from None
        if self.minimum is not None and value < self.minimum:
            raise SettingValueError(f"{self.name} must be at least {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise SettingValueError(f"{self.name} must be at most {self.maximum}")
        return value


SETTINGS: tuple[Setting, ...] = (
    Setting(
        name="Service.MessengerEndpoint",
        kind=Kind.TEXT,
        default="",
        description="Where the service messenger listens: empty or pipe://NAME for a local Unix socket, "
        "tcp://HOST:PORT for a load-balanced setup, tcp://*:PORT for high availability.",
        live=True,
        validator=parse_endpoint,
    ),
    Setting(
        name="Service.MessengerKey",
        kind=Kind.SECRET,
        default="",
        description="Base64 of the 32-byte key that encrypts and authenticates every messenger frame. "
        "Generated on first use; every node of a cluster shares it through the database.",
        live=True,
        validator=parse_strong_key,  # well-formed and not guessable
        keep_replaced_seconds=MESSENGER_KEY_GRACE_MAX_SECONDS,
        # An empty key would make the next node to start generate one that nobody chose: the page refuses it.
        needs_value="paste base64 of 32 random bytes, or generate a new key",
    ),
    Setting(
        name="Service.MessengerKeyGraceSeconds",
        kind=Kind.INTEGER,
        default="60",
        description="How long, in seconds, a replaced Service.MessengerKey is still accepted, so nodes and "
        "connections move to the new key without a failed request. 0 refuses the old key at once.",
        live=True,
        minimum=0,
        maximum=MESSENGER_KEY_GRACE_MAX_SECONDS,
    ),
    Setting(
        name="Service.MessengerAllowedIps",
        kind=Kind.TEXT,
        default="",
        description="IP addresses or CIDR networks allowed to connect to the messenger over TCP, "
        "separated by commas. Empty allows any address (the key still has to match).",
        live=True,
        validator=parse_allowed_ips,
    ),
    Setting(
        name="Runners.FeedIndexing.IntervalSeconds",
        kind=Kind.INTEGER,
        default="300",
        description="How often, in seconds, the Feed Indexing runner re-indexes every feed.",
        live=True,
        minimum=10,
        maximum=86400,
    ),
    Setting(
        name="Runners.DropPathMonitor.IntervalSeconds",
        kind=Kind.INTEGER,
        default="60",
        description="How often, in seconds, the Drop Path Monitor looks for packages dropped into feed drop paths.",
        live=True,
        minimum=5,
        maximum=86400,
    ),
    Setting(
        name="Runners.FeedIntegrity.IntervalSeconds",
        kind=Kind.INTEGER,
        default="86400",
        description="How often, in seconds, the Feed Integrity runner checks stored packages against their hashes.",
        live=True,
        minimum=300,
        maximum=604800,
    ),
    Setting(
        name="Runners.FeedRetention.IntervalSeconds",
        kind=Kind.INTEGER,
        default="3600",
        description="How often, in seconds, the Feed Retention runner applies the feeds' retention rules.",
        live=True,
        minimum=60,
        maximum=604800,
    ),
    Setting(
        name="Runners.ServiceHeartbeat.IntervalSeconds",
        kind=Kind.INTEGER,
        default="15",
        description="How often, in seconds, the service node records its heartbeat in the node registry.",
        live=True,
        minimum=1,
        maximum=300,
    ),
    Setting(
        name="Runners.NodeMessageCleanup.IntervalSeconds",
        kind=Kind.INTEGER,
        default="3600",
        description="How often, in seconds, the Node Message Cleanup runner deletes old finished triggers.",
        live=True,
        minimum=60,
        maximum=86400,
    ),
    Setting(
        name="Service.TriggerPollSeconds",
        kind=Kind.INTEGER,
        default="5",
        description="How often, in seconds, the service looks for queued Reindex/Run requests "
        "(the ones the messenger could not deliver at once).",
        live=True,
        minimum=1,
        maximum=300,
    ),
    Setting(
        name="Service.TriggerRetentionDays",
        kind=Kind.INTEGER,
        default="7",
        description="How many days finished Reindex/Run requests are kept before Node Message Cleanup deletes them.",
        live=True,
        minimum=1,
        maximum=365,
    ),
    Setting(
        name="Service.RunHistoryDays",
        kind=Kind.INTEGER,
        default="14",
        description="How many days each task runner's run history (its runs and their log lines) is kept before "
        "Node Message Cleanup deletes it.",
        live=True,
        minimum=1,
        maximum=365,
    ),
    Setting(
        name="Service.RunHistoryRuns",
        kind=Kind.INTEGER,
        default="100",
        description="How many of its latest runs each task runner keeps in its run history at most; older ones are "
        "deleted as new runs end (frequent runners such as Trigger Dispatch reach this long before the days do).",
        live=True,
        minimum=1,
        maximum=10000,
    ),
    Setting(
        name="Service.RunHistoryLogLines",
        kind=Kind.INTEGER,
        default="200",
        description="How many log lines each run keeps in the run history at most: the first and last half are "
        "kept and the lines between counted as dropped. Each line keeps at most 4,096 characters.",
        live=True,
        minimum=10,
        maximum=2000,
    ),
    Setting(
        name="Diagnostics.MinimumLogLevel",
        kind=Kind.TEXT,
        default="INFO",
        description="The least severe log messages the nodes write and show on the Service Status page.",
        live=True,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
    ),
    Setting(
        name="Storage.PackagesRootPath",
        kind=Kind.TEXT,
        default="",
        description="The absolute path under which new feeds get their storage folder (<path>/<feed name>). "
        "Empty uses the packages folder in the data directory. Existing feeds keep their folder. Not the data "
        "directory, a folder containing it, or a folder inside it other than its packages folder.",
        live=True,
        validator=packages_root_check,
    ),
    Setting(
        name="Feeds.AnonymousRead",
        kind=Kind.BOOLEAN,
        default="true",
        description="Whether anyone may list and download packages without logging in. When false, "
        "package clients must send a user name and password (HTTP basic authentication).",
        live=True,
    ),
    Setting(
        name="Feeds.AllowOverwrite",
        kind=Kind.BOOLEAN,
        default="false",
        description="Whether an upload may replace a package file that is already in the feed. When false "
        "(the default), uploading a file name that exists is refused (409 Conflict), as on pypi.org.",
        live=True,
    ),
    Setting(
        name="Service.HeartbeatSeconds",
        kind=Kind.INTEGER,
        default="3",
        description="How often, in seconds, each service node renews its registry heartbeat, and the primary "
        "its lease (a standby tries to take a stale lease just as often).",
        live=True,
        minimum=1,
        maximum=60,
    ),
    Setting(
        name="Service.FailoverStaleSeconds",
        kind=Kind.INTEGER,
        default="10",
        description="After how many seconds without a renewal the primary lease counts as stale, so a standby "
        "service node takes over. Keep it at least twice Service.HeartbeatSeconds.",
        live=True,
        minimum=2,
        maximum=600,
    ),
    Setting(
        name="Metrics.AllowedIps",
        kind=Kind.TEXT,
        default="",
        description="IP addresses or CIDR networks that may scrape /metrics without an API key, separated by "
        "commas. Empty allows no address: scrapers then need an API key with the metrics:read scope.",
        live=True,
        validator=functools.partial(parse_allowed_ips, setting="Metrics.AllowedIps"),
    ),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def setting_definition(name: str) -> Setting:
    """The declaration of setting `name`; raises UnknownSetting."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise UnknownSetting(name) from None
