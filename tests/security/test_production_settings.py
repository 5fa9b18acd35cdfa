"""The production settings of docs/security.md: `manage.py check --deploy` is clean with the documented environment,
and each variable does what the page says (HTTPS redirect, HSTS, secure cookies, proxy header, trusted origins).

The checks run `manage.py` in a subprocess, because settings are read from the environment at start-up (so they
are marked slow: `make test` runs them, `make check` does not).
"""
from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from django.test import Client, override_settings

from tests.processes import manage

# Every variable this page is about, cleared unless a test sets it (the outer environment must not leak in).
SECURITY_VARS = ("DJANGO_DEBUG", "DJANGO_SECURE_SSL", "DJANGO_BEHIND_PROXY", "DJANGO_HSTS_SECONDS",
                 "DJANGO_HSTS_INCLUDE_SUBDOMAINS", "DJANGO_HSTS_PRELOAD", "DJANGO_CSRF_TRUSTED_ORIGINS")
PRINT_SETTINGS = (
    "import json; from django.conf import settings as s; print(json.dumps({name: getattr(s, name) for name in ("
    "'DEBUG', 'SECURE_SSL_REDIRECT', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_HSTS_SECONDS', "
    "'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_HSTS_PRELOAD', 'SECURE_PROXY_SSL_HEADER', 'CSRF_TRUSTED_ORIGINS', "
    "'CSRF_FAILURE_VIEW')}))"
)


def production_env(**extra: str) -> dict[str, str]:
    """The documented production environment (docs/security.md), with `extra` on top."""
    env = {name: "" for name in SECURITY_VARS}
    env.update(DJANGO_DEBUG="0", DJANGO_SECURE_SSL="1", DJANGO_SECRET_KEY=secrets.token_urlsafe(50))
    env.update(extra)
    return env


def check_deploy(data_dir: Path, env: dict[str, str]) -> tuple[int, str]:
    result = manage(data_dir, "check", "--deploy", check=False, **env)
    return result.returncode, result.stdout + result.stderr


def node_settings(data_dir: Path, env: dict[str, str]) -> dict:
    result = manage(data_dir, "shell", "-c", PRINT_SETTINGS, **env)
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_check_deploy_is_clean_with_the_documented_production_environment(tmp_path: Path) -> None:
    code, output = check_deploy(tmp_path, production_env())
    assert code == 0, output
    assert "WARNINGS" not in output and "ERRORS" not in output, output
    assert "System check identified no issues" in output


@pytest.mark.slow
def test_check_deploy_warns_about_the_development_defaults(tmp_path: Path) -> None:
    """The control: without DJANGO_SECURE_SSL the same check names what is missing."""
    code, output = check_deploy(tmp_path, production_env(DJANGO_SECURE_SSL=""))
    assert "WARNINGS" in output
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in output


@pytest.mark.slow
def test_turning_hsts_preload_off_is_reported(tmp_path: Path) -> None:
    code, output = check_deploy(tmp_path, production_env(DJANGO_HSTS_PRELOAD="0", DJANGO_HSTS_INCLUDE_SUBDOMAINS="0"))
    assert "security.W021" in output and "security.W005" in output


@pytest.mark.slow
def test_the_environment_sets_the_documented_settings(tmp_path: Path) -> None:
    development = node_settings(tmp_path, {name: "" for name in SECURITY_VARS})
    assert development == {
        "DEBUG": False, "SECURE_SSL_REDIRECT": False, "SESSION_COOKIE_SECURE": False, "CSRF_COOKIE_SECURE": False,
        "SECURE_HSTS_SECONDS": 0, "SECURE_HSTS_INCLUDE_SUBDOMAINS": False, "SECURE_HSTS_PRELOAD": False,
        "SECURE_PROXY_SSL_HEADER": None, "CSRF_TRUSTED_ORIGINS": [],
        "CSRF_FAILURE_VIEW": "proget_web.security.csrf_failure",
    }
    production = node_settings(tmp_path, production_env(
        DJANGO_BEHIND_PROXY="1", DJANGO_HSTS_SECONDS="600", DJANGO_HSTS_PRELOAD="0",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://pkgs.example.com, https://pkgs.example.com:8443,"))
    assert production == {
        "DEBUG": False, "SECURE_SSL_REDIRECT": True, "SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True,
        "SECURE_HSTS_SECONDS": 600, "SECURE_HSTS_INCLUDE_SUBDOMAINS": True, "SECURE_HSTS_PRELOAD": False,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "CSRF_TRUSTED_ORIGINS": ["https://pkgs.example.com", "https://pkgs.example.com:8443"],
        "CSRF_FAILURE_VIEW": "proget_web.security.csrf_failure",
    }


PRODUCTION = dict(
    SECURE_SSL_REDIRECT=True, SECURE_REDIRECT_EXEMPT=[r"^health$"], SESSION_COOKIE_SECURE=True,
    CSRF_COOKIE_SECURE=True, SECURE_HSTS_SECONDS=31_536_000, SECURE_HSTS_INCLUDE_SUBDOMAINS=True,
    SECURE_HSTS_PRELOAD=True, SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
)


@pytest.mark.django_db
@override_settings(**PRODUCTION)
def test_over_https_plain_http_is_redirected_and_https_gets_hsts() -> None:
    client = Client()
    plain = client.get("/feeds/")
    assert plain.status_code == 301 and plain.url == "https://testserver/feeds/"
    assert client.get("/health").status_code == 200  # load-balancer probes over plain HTTP
    proxied = client.get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")
    assert proxied.status_code == 200
    assert proxied["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert "secure" in str(proxied.cookies["csrftoken"]).lower()
