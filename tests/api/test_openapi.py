"""The OpenAPI description stays true: every route described, every described path resolves to its view, and a
bounded schemathesis run against the app finds no 5xx and no answer outside the schema."""
from __future__ import annotations

import re

import hypothesis
import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from django.test import Client
from django.urls import URLPattern, resolve
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api import urls as api_urls
from api.openapi import DESCRIPTION, NOT_DESCRIBED
from api_keys.models import SCOPE_NAMES
from tests.examples import examples

pytestmark = pytest.mark.django_db

# A value for each path parameter, to turn a described path into a URL.
SAMPLE_PARAMETERS = {"name": "Feed Indexing", "feed": "main", "id": "1"}


def _url(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE_PARAMETERS[m[1]], path)


def test_every_route_is_described_and_every_described_path_resolves() -> None:
    routes = {pattern.name for pattern in api_urls.urlpatterns if isinstance(pattern, URLPattern)}
    reached = {resolve(_url(path)).url_name for path in DESCRIPTION["paths"]}
    assert "api-not-found" not in reached  # no described path falls through to the catch-all
    assert reached == routes - set(NOT_DESCRIBED)
    assert set(NOT_DESCRIBED) <= routes


def test_every_described_method_is_the_one_the_view_takes() -> None:
    for path, operations in DESCRIPTION["paths"].items():
        for method in operations:
            status = getattr(Client(), method)(_url(path)).status_code
            assert status != 405, (method, path)
            other = "post" if method == "get" else "get"
            assert getattr(Client(), other)(_url(path)).status_code == 405, (other, path)


def test_description_is_served_and_names_both_security_schemes() -> None:
    served = Client().get("/api/openapi.json").json()
    assert served == DESCRIPTION
    schemes = served["components"]["securitySchemes"]
    assert schemes["apiKeyHeader"] == {"type": "apiKey", "in": "header", "name": "X-ApiKey"}
    assert schemes["basicAuth"]["scheme"] == "basic"


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
# Examples per operation: ~10 operations x 20 examples stays well under the ~60 s budget on a shared machine
# (a quarter of them under `make check`).
EXAMPLES_PER_OPERATION = examples(20)


def test_api_answers_conform_to_the_description(make_key, service, feed) -> None:
    """Generated requests (valid and edge-case data, with a key holding every scope) against the app in-process."""
    schema = schemathesis.openapi.from_dict(DESCRIPTION)  # what /api/openapi.json serves (asserted above)
    schema.app = get_wsgi_application()  # requests go to the app in-process, as from_wsgi would send them
    token = make_key(*SCOPE_NAMES)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == sum(len(methods) for methods in DESCRIPTION["paths"].values())
    for operation in operations:

        @hypothesis.settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                             suppress_health_check=list(hypothesis.HealthCheck))
        @hypothesis.given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers={"X-ApiKey": token}, checks=CHECKS)

        check()
    assert {type for type, _ in service.calls} >= {"status.snapshot", "runner.pause"}  # reached the app
