"""Django settings for web and service nodes, read from the environment (see docs/configuration.md).

Embedded defaults: SQLite (WAL) in the data dir and an in-memory channel layer. DATABASE_URL
switches to PostgreSQL; REDIS_URL to a Redis channel layer.
"""
from __future__ import annotations

import os
from datetime import timedelta

import dj_database_url

from node_base.datadir import BASE_DIR, SECRET_KEY_FILE, data_dir, private_file, read_or_create_secret

DATA_DIR = data_dir()
_TRUE = {"1", "true", "yes", "on"}


def _env_flag(name: str, *, default: bool = False) -> bool:
    """A yes/no environment variable: 1/true/yes/on is yes, any other value no, unset or empty the default."""
    value = os.environ.get(name, "").strip().lower()
    return value in _TRUE if value else default


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or read_or_create_secret(DATA_DIR / SECRET_KEY_FILE)
DEBUG = _env_flag("DJANGO_DEBUG")
ALLOWED_HOSTS = [
    host.strip()
    for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
    if host.strip()
]

# The node's identity in the cluster registry.
NODE_NAME = os.environ.get("PROGET_NODE_NAME") or os.uname().nodename
NODE_IP = os.environ.get("PROGET_NODE_IP", "")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "proget_web",
    "settings_store",
    "administration",
    "cluster",
    "indexer",
    "feeds",
    "api_keys",
    "api",
    "axes",  # failed-login throttling (proget_web/throttling.py); its tables come with `migrate`
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "proget_web.security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Outside CSRF and the handlers: every /api/ and /metrics error is JSON, a big body 413, HEAD as GET.
    "api.middleware.ApiJsonMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # A lost or locked database: a 503 that says so (proget_web/unavailable.py), not a bare 500.
    "proget_web.unavailable.DatabaseUnavailableMiddleware",
    # After the response: records this web process in the node registry at most every 15 s.
    "proget_web.web_node.web_node_heartbeat",
    # A request whose password check axes refused (locked out) gets the 429 of proget_web.throttling instead.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "proget_web.urls"
ASGI_APPLICATION = "proget_web.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=60)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            # Created 0600 here, before SQLite would create it 0644: its -wal and -shm then get 0600 too.
            "NAME": private_file(DATA_DIR / "proget.sqlite3"),
            "OPTIONS": {
                # WAL lets the web and service processes read while the other writes;
                # IMMEDIATE takes the write lock up front so concurrent writers queue instead of deadlocking.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }

if os.environ.get("REDIS_URL"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py >= 8 times reads out after 5 s by default, exactly channels_redis's 5 s blocking receive
            # (BZPOPMIN): every WebSocket consumer then dies with 1011 after ~5 s. Reads may take a little longer.
            "CONFIG": {"hosts": [{"address": os.environ["REDIS_URL"], "socket_timeout": 15}]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# A live page's WebSocket is closed after this many seconds and the page reconnects (fresh snapshot, fresh
# session check). Actions are checked per message anyway; this bounds how long a page whose session ended in
# another web process keeps streaming. An hour: a page open all day reconnects a handful of times.
STATUS_SOCKET_LIFETIME_SECONDS = float(os.environ.get("PROGET_STATUS_SOCKET_LIFETIME_SECONDS") or 3600)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Password guessing (docs/security.md): axes refuses a locked-out user or IP before the password is checked.
AUTHENTICATION_BACKENDS = [
    "proget_web.throttling.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Failed password checks (login page, basic auth) that lock a user name, or a client IP, out: a user who mistypes
# a few times is not locked, a guesser gets ~10 tries per cool-off. API keys are not counted (not guessable).
AXES_FAILURE_LIMIT = 10
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one reaching the limit locks
# How long a lockout lasts after the last counted failure; long enough to make guessing slow, short enough
# that a locked-out colleague (or a user locked by someone else's guesses) is not stuck for a day.
AXES_COOLOFF_TIME = timedelta(minutes=15)
# Failures during a lockout do not extend it, so Retry-After holds; a success never resets the counts (a guesser
# with an account of their own could otherwise reset their IP's count by logging in).
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = False
AXES_DISABLE_ACCESS_LOG = True  # only failures are kept: no database write per successful login
AXES_LOCKOUT_CALLABLE = "proget_web.throttling.lockout_response"  # 429 with Retry-After
AXES_HANDLER = "proget_web.throttling.BasicAuthAwareHandler"  # the database handler; never parses an upload's body
# The client IP is the peer address (REMOTE_ADDR), as for API keys: forwarded headers are not trusted.
AXES_IPWARE_META_PRECEDENCE_ORDER = ("REMOTE_ADDR",)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"  # collectstatic target; WhiteNoise also serves straight from the apps
STATIC_ROOT.mkdir(exist_ok=True)
# WhiteNoise serves static files from daphne itself, so a node needs no separate file server.
WHITENOISE_USE_FINDERS = True

X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
# A refused CSRF check gets the site's 403 page (proget_web/security.py); the CSP is set there too.
CSRF_FAILURE_VIEW = "proget_web.security.csrf_failure"

# Production over HTTPS (docs/security.md): off by default so `make run` works over plain http://127.0.0.1:8000.
SECURE_SSL = _env_flag("DJANGO_SECURE_SSL")
if SECURE_SSL:
    SECURE_SSL_REDIRECT = True
    # Load balancers probe /health over plain HTTP; it is public and sets no cookie.
    SECURE_REDIRECT_EXEMPT = [r"^health$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # One year: what the browsers' preload list asks for. Lower it (e.g. 300) while trying HTTPS out.
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS") or 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = _env_flag("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = _env_flag("DJANGO_HSTS_PRELOAD", default=True)
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (and strips it from clients): trust it for is_secure().
if _env_flag("DJANGO_BEHIND_PROXY"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Origins (scheme://host[:port]) allowed to POST forms besides the request's own host, e.g. https://pkgs.example.com
CSRF_TRUSTED_ORIGINS = [
    origin.strip() for origin in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if origin.strip()
]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("PROGET_LOG_LEVEL", "INFO")},
    # axes: its lockout warnings stay; its per-attempt and start-up INFO lines would drown the log.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

# Extra task runners for the service node (dotted paths to Runner subclasses), after the built-in ones.
INDEXER_EXTRA_RUNNERS = [path for path in os.environ.get("PROGET_EXTRA_RUNNERS", "").split(",") if path.strip()]
