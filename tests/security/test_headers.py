"""Security headers on every page, and markup the Content-Security-Policy can hold to.

Every HTML page (each route, as a superuser and as an anonymous visitor, plus the 403, 404 and CSRF pages)
carries X-Frame-Options DENY, nosniff, a Referrer-Policy and exactly the site's CSP; no template and no
rendered page holds inline script, event-handler attributes or style attributes, which that CSP would block.
"""
from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.http import HttpResponse
from django.test import Client

from feeds.models import Feed
from proget_web.security import CONTENT_SECURITY_POLICY
from tests.security.support import ROOT, Route, csp_violations, http_routes, template_files

pytestmark = pytest.mark.django_db

EXPECTED_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'")
ROUTES = [route for route in http_routes() if route.name not in {"logout"}]  # GET on logout is a 405, no page


def _assert_security_headers(response: HttpResponse, what: str) -> None:
    assert response["Content-Security-Policy"] == EXPECTED_CSP, what
    assert response["X-Content-Type-Options"] == "nosniff", what
    assert response["X-Frame-Options"] == "DENY", what
    assert response["Referrer-Policy"] == "same-origin", what
    assert response["Cross-Origin-Opener-Policy"] == "same-origin", what


def _is_html(response: HttpResponse) -> bool:
    return response.get("Content-Type", "").startswith("text/html")


def test_the_policy_is_the_documented_one_without_unsafe_sources() -> None:
    assert CONTENT_SECURITY_POLICY == EXPECTED_CSP
    assert "unsafe" not in CONTENT_SECURITY_POLICY


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
def test_every_response_carries_the_headers_and_html_has_no_inline_code(route: Route, feed: Feed,
                                                                        admin_client: Client) -> None:
    for who, client in (("superuser", admin_client), ("anonymous", Client())):
        response = client.get(route.path)
        what = f"{route} as {who}: {response.status_code}"
        assert response.status_code < 500, what
        _assert_security_headers(response, what)
        if _is_html(response):
            assert not csp_violations(response.content.decode()), what


def test_the_error_pages_carry_the_headers(plain_user: User) -> None:
    client = Client()
    client.force_login(plain_user)
    forbidden = client.get("/administration/advanced-settings")
    missing = client.get("/no-such-page")
    csrf_client = Client(enforce_csrf_checks=True)
    csrf = csrf_client.post("/accounts/login/", {"username": "plain", "password": "pw"})
    for response, status in ((forbidden, 403), (missing, 404), (csrf, 403)):
        assert response.status_code == status
        _assert_security_headers(response, f"{status} page")
        assert _is_html(response)
        assert not csp_violations(response.content.decode())


def test_the_csrf_failure_page_is_the_sites_403_page() -> None:
    response = Client(enforce_csrf_checks=True).post("/accounts/login/", {"username": "x", "password": "y"})
    page = response.content.decode()
    assert response.status_code == 403
    assert "This form could not be accepted" in page
    assert '<link rel="stylesheet" href="/static/proget/site.css">' in page  # the site's layout (base.html)
    assert 'class="card notice"' in page  # styled like templates/403.html
    assert "CSRF" not in page.split("<main>", 1)[1]  # the reason goes to the log, not to the page


def test_static_files_carry_the_headers() -> None:
    for path in ("/static/proget/site.css", "/static/proget/status.js"):
        response = Client().get(path)
        assert response.status_code == 200
        # WhiteNoise answers above the X-Frame-Options middleware; the CSP's frame-ancestors covers framing.
        assert response["Content-Security-Policy"] == EXPECTED_CSP
        assert response["X-Content-Type-Options"] == "nosniff"


def test_a_view_that_sets_its_own_policy_keeps_it() -> None:
    from proget_web.security import ContentSecurityPolicyMiddleware

    response = HttpResponse()
    response["Content-Security-Policy"] = "default-src 'none'"
    assert ContentSecurityPolicyMiddleware.process_response(response)["Content-Security-Policy"] == "default-src 'none'"


@pytest.mark.parametrize("template", template_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_template_has_inline_script_handlers_or_styles(template) -> None:  # type: ignore[no-untyped-def]
    problems = csp_violations(template.read_text(encoding="utf-8"))
    assert not problems, f"{template.relative_to(ROOT)}: {problems}"


@pytest.mark.parametrize(
    "markup",
    [
        "<script>alert(1)</script>",
        '<script type="module">\n  go();\n</script>',
        "<script></script>",
        '<button onclick="go()">x</button>',
        '<body onload = "go()">',
        '<p style="color: red">x</p>',
        "<style>p { color: red }</style>",
        '<a href="javascript:go()">x</a>',
    ],
)
def test_the_scanner_finds_inline_code(markup: str) -> None:
    assert csp_violations(markup)


def test_the_scanner_accepts_what_the_templates_use() -> None:
    markup = ('<script src="/static/proget/status.js" defer></script>\n'
              '<div id="service-status" data-socket-path="/ws/x" data-can-control="true">'
              '<a href="/feeds/" aria-current="page">Feeds</a><meta name="viewport" content="width=device-width">')
    assert csp_violations(markup) == []
