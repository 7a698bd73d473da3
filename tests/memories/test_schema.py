"""The OpenAPI schema documents API v1 accurately: it generates without a warning and states limits."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from memories import conf


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("schema") / "schema.json"
    # --fail-on-warn: an endpoint whose types the generator had to guess fails here.
    call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", "--file", str(path))
    return json.loads(path.read_text())


EXPECTED_OPERATIONS = {
    ("/api/v1/contexts/", "get"), ("/api/v1/contexts/", "post"),
    ("/api/v1/contexts/{context_id}/", "get"), ("/api/v1/contexts/{context_id}/", "put"),
    ("/api/v1/contexts/{context_id}/", "patch"), ("/api/v1/contexts/{context_id}/", "delete"),
    ("/api/v1/contexts/{context_id}/shares/", "get"), ("/api/v1/contexts/{context_id}/shares/", "post"),
    ("/api/v1/contexts/{context_id}/shares/{share_id}/", "delete"),
    ("/api/v1/contexts/{context_id}/transfer/", "post"), ("/api/v1/contexts/{context_id}/export/", "get"),
    ("/api/v1/transfer-offers/", "get"), ("/api/v1/transfer-offers/{offer_id}/accept/", "post"),
    ("/api/v1/transfer-offers/{offer_id}/decline/", "post"), ("/api/v1/transfer-offers/{offer_id}/withdraw/", "post"),
    ("/api/v1/memories/", "get"), ("/api/v1/memories/", "post"),
    ("/api/v1/memories/{memory_id}/", "get"), ("/api/v1/memories/{memory_id}/", "put"),
    ("/api/v1/memories/{memory_id}/", "patch"), ("/api/v1/memories/{memory_id}/", "delete"),
    ("/api/v1/organizations/", "get"), ("/api/v1/organizations/", "post"),
    ("/api/v1/organizations/{organization_id}/", "get"),
    ("/api/v1/organizations/{organization_id}/members/", "get"),
    ("/api/v1/organizations/{organization_id}/members/", "post"),
    ("/api/v1/organizations/{organization_id}/members/{user_id}/", "put"),
    ("/api/v1/organizations/{organization_id}/members/{user_id}/", "delete"),
    ("/api/v1/teams/", "get"), ("/api/v1/teams/", "post"), ("/api/v1/teams/{team_id}/", "get"),
    ("/api/v1/teams/{team_id}/members/", "get"), ("/api/v1/teams/{team_id}/members/", "post"),
    ("/api/v1/teams/{team_id}/members/{user_id}/", "put"), ("/api/v1/teams/{team_id}/members/{user_id}/", "delete"),
}


def test_every_endpoint_is_in_the_schema(schema):
    operations = {(path, method) for path, item in schema["paths"].items() for method in item}
    assert operations >= EXPECTED_OPERATIONS


def test_limits_are_documented_per_field(schema):
    request = schema["components"]["schemas"]["MemoryCreateRequest"]
    content = request["properties"]["content"]
    assert content["maxLength"] == conf.get("MEMORIES_CONTENT_MAX_LENGTH")
    assert str(conf.get("MEMORIES_CONTENT_MAX_LENGTH")) in content["description"]
    assert str(conf.get("MEMORIES_METADATA_MAX_BYTES")) in request["properties"]["metadata"]["description"]
    assert request["properties"]["tags"]["maxItems"] == 20
    assert set(request["required"]) == {"context", "content"}


def test_errors_are_documented_as_the_envelope(schema):
    create = schema["paths"]["/api/v1/memories/"]["post"]["responses"]
    for status in ("400", "403", "404", "415"):
        assert create[status]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorEnvelope")
