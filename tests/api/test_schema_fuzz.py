"""Schemathesis against the live application (in-process WSGI), with a real API key.

Every operation of the OpenAPI schema gets a bounded number of generated requests
(``API_FUZZ_MAX_EXAMPLES``, default 10 per operation). Each is sent through the whole stack —
middleware, key authentication, scopes, throttles, the views, the services, the database — signed
with the reference client when the operation is critical, so the generated data reaches the
handlers. Every response must: not be a 5xx, have a documented status code, match its documented
schema and content type, and carry no secret (the leak scanner's patterns and known values).
"""

from __future__ import annotations

import io
import json
import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.client import signature_headers
from api.scopes import SCOPES
from memories.models import Context, Membership, Memory, Organization, Role, Team
from tests.api.leak_scanner import _known_secrets, find_leaks

MAX_EXAMPLES = int(os.environ.get("API_FUZZ_MAX_EXAMPLES", "10"))


def _schema_document() -> dict:
    generated = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(generated, renderer_context={}))


schema = schemathesis.openapi.from_dict(_schema_document())

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


class SigningApp:
    """WSGI middleware standing in for a client that signs every request with the reference client."""

    def __init__(self, app, credentials: dict):
        self.app = app
        self.credentials = credentials

    def __call__(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        path = environ.get("PATH_INFO", "")
        from urllib.parse import quote

        query = environ.get("QUERY_STRING", "")
        target = quote(path.encode("latin-1").decode("utf-8", "replace"), safe="/-_.~") + (f"?{query}" if query else "")
        if self.credentials:
            headers = signature_headers(
                key=self.credentials["key"],
                signing_secret=self.credentials["signing_secret"],
                method=environ["REQUEST_METHOD"],
                path=target,
                body=body,
            )
            for name, value in headers.items():
                environ[f"HTTP_{name.upper().replace('-', '_')}"] = value
        return self.app(environ, start_response)


CREDENTIALS: dict = {}
APP = SigningApp(get_wsgi_application(), CREDENTIALS)


@pytest.fixture
def live_world(db, make_user, issue_key, settings_override):
    """Data the generated requests can reach, and a key with every scope."""
    owner = make_user("fuzz.owner")
    make_user("fuzz.friend")
    organization = Organization.objects.create(name="Fuzz", slug="fuzz")
    team = Team.objects.create(organization=organization, name="Fuzzers", slug="fuzzers")
    Membership.objects.create(user=owner, organization=organization, role=Role.OWNER)
    Membership.objects.create(user=owner, team=team, role=Role.OWNER)
    context = Context.objects.create(name="Fuzz", scope="team", owner_team=team, created_by=owner)
    for number in range(3):
        Memory.objects.create(context=context, content=f"memory {number}", author=owner)
    issued = issue_key(owner, scopes=list(SCOPES))
    CREDENTIALS.update(key=issued.key, signing_secret=issued.signing_secret)
    # Django's test client does the same: keep the test's connection (and transaction) open.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield issued
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)
    CREDENTIALS.clear()


@pytest.fixture
def settings_override(settings):
    settings.API_THROTTLE_RATES = {}


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
    derandomize=True,
)
def test_every_operation_answers_as_documented(case, live_world):
    response = case.call(app=APP, headers={"Authorization": f"Bearer {live_world.key}"})
    case.validate_response(response, checks=CHECKS)
    leaks = find_leaks(response.content.decode("utf-8", "replace"), known=_known_secrets())
    assert not leaks, f"{case.method} {case.formatted_path}: response carries {leaks}"
