"""Bad input on every writing endpoint: a 400 envelope naming the fields, and the data as it was.

Wrong types, unknown fields, missing fields, oversize values, malformed JSON, a body that is not
a JSON object, and a content type that is not JSON (415). Never a 500, on either database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
from django.test import override_settings

from memories.models import Context, ContextShare, Membership, Memory, MemoryTag, Organization, Team
from tests.memories.api_helpers import assert_error, url

pytestmark = pytest.mark.django_db


@dataclass
class Endpoint:
    method: str
    name: str
    path_ids: dict  # url kwarg -> attribute path on the fixture bundle
    valid: dict  # a body the endpoint accepts ("@friend" stands for the friend's username)
    required: set  # fields an empty body must name
    wrong_types: dict  # a body where every field has the wrong JSON type
    oversize: dict = field(default_factory=dict)  # field -> too-large value


ENDPOINTS = [
    Endpoint("post", "context-list", {}, {"name": "New", "scope": "personal"}, {"name", "scope"},
             {"name": 5, "scope": 1, "team": "1", "organization": 1.5},
             {"name": "x" * 201}),
    Endpoint("put", "context-detail", {"context_id": "context"}, {"name": "Renamed"}, {"name"},
             {"name": ["Renamed"]}, {"name": "x" * 201}),
    Endpoint("patch", "context-detail", {"context_id": "context"}, {"name": "Renamed"}, set(),
             {"name": {"a": 1}}, {"name": "x" * 201}),
    Endpoint("post", "context-share-list", {"context_id": "context"}, {"user": "@friend", "permission": "read"},
             {"permission"}, {"user": 5, "team": "1", "permission": True}, {"user": "x" * 151}),
    Endpoint("post", "context-transfer", {"context_id": "context"}, {"user": "@friend"},
             {"user", "team", "organization"}, {"user": 5, "team": 1.0, "organization": False},
             {"user": "x" * 151}),
    Endpoint("post", "memory-list", {}, {"context": "@context", "content": "hello"}, {"context", "content"},
             {"context": "1", "content": 5, "kind": 1, "source": 7, "metadata": [], "tags": "a"},
             {"content": "x" * 65537, "source": "x" * 101, "tags": [f"t{i}" for i in range(21)]}),
    Endpoint("put", "memory-detail", {"memory_id": "memory"}, {"content": "hello"}, {"content"},
             {"content": 5, "kind": [], "metadata": "{}", "tags": [1, 2]},
             {"content": "x" * 65537, "tags": ["x" * 51]}),
    Endpoint("patch", "memory-detail", {"memory_id": "memory"}, {"content": "hello"}, set(),
             {"content": None, "metadata": 1, "tags": {"a": 1}},
             {"metadata": {"blob": "x" * 16385}}),
    Endpoint("post", "organization-list", {}, {"name": "Initech", "slug": "initech"}, {"name", "slug"},
             {"name": 1, "slug": 2}, {"slug": "x" * 61}),
    Endpoint("post", "team-list", {}, {"organization": "@organization", "name": "Ops", "slug": "ops"},
             {"organization", "name", "slug"}, {"organization": "1", "name": 1, "slug": None},
             {"name": "x" * 201}),
    Endpoint("post", "team-member-list", {"team_id": "team"}, {"user": "@friend", "role": "viewer"},
             {"user", "role"}, {"user": 1, "role": 2}, {"user": "x" * 151}),
    Endpoint("put", "team-member-detail", {"team_id": "team", "user_id": "member"}, {"role": "viewer"},
             {"role"}, {"role": None}),
    Endpoint("post", "organization-member-list", {"organization_id": "organization"},
             {"user": "@friend", "role": "viewer"}, {"user", "role"}, {"user": [], "role": {}}),
    Endpoint("put", "organization-member-detail", {"organization_id": "organization", "user_id": "member"},
             {"role": "viewer"}, {"role"}, {"role": 3}),
]
IDS = [f"{endpoint.method} {endpoint.name}" for endpoint in ENDPOINTS]
WITH_REQUIRED = [pytest.param(e, id=f"{e.method} {e.name}") for e in ENDPOINTS if e.required]
WITH_OVERSIZE = [pytest.param(e, id=f"{e.method} {e.name}") for e in ENDPOINTS if e.oversize]


@dataclass
class Setup:
    client: object
    context: Context
    memory: Memory
    team: Team
    organization: Organization
    member: object
    friend: object


@pytest.fixture
def setup(world, make_user, make_memory, client_for, acquaint) -> Setup:
    member = make_user("mo.member")
    world.grant(member, "member", team=world.team)
    world.grant(member, "member", organization=world.organization)
    friend = make_user("fred.friend")
    acquaint(world.owner, friend)  # the API names only users one shares an organization with
    return Setup(
        client=client_for(world.owner),
        context=world.team_context,
        memory=make_memory(world.team_context, content="original", tags=["kept"]),
        team=world.team,
        organization=world.organization,
        member=member,
        friend=friend,
    )


def _path(endpoint: Endpoint, setup: Setup) -> str:
    return url(endpoint.name, **{kwarg: getattr(setup, attribute).pk for kwarg, attribute in endpoint.path_ids.items()})


def _resolve(body: dict, setup: Setup) -> dict:
    placeholders = {
        "@friend": setup.friend.username,
        "@context": setup.context.pk,
        "@organization": setup.organization.pk,
    }
    return {key: placeholders.get(value, value) if isinstance(value, str) else value for key, value in body.items()}


def _snapshot() -> list:
    """Every row of every memories table, so a test can assert nothing changed."""
    return [
        list(model.objects.order_by("pk").values())
        for model in (Organization, Team, Membership, Context, ContextShare, Memory, MemoryTag)
    ]


def _send(setup: Setup, endpoint: Endpoint, data, *, content_type="application/json"):
    raw = data if isinstance(data, bytes | str) else json.dumps(data)
    return getattr(setup.client, endpoint.method)(_path(endpoint, setup), data=raw, content_type=content_type)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
def test_the_valid_body_is_accepted(setup, endpoint):
    """The baseline the bad-input cases below depart from (so they fail for the named reason)."""
    response = _send(setup, endpoint, _resolve(endpoint.valid, setup))
    assert response.status_code in (200, 201, 202), response.content  # 202: a transfer offer


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
def test_unknown_fields_are_named(setup, endpoint):
    before = _snapshot()
    body = {**_resolve(endpoint.valid, setup), "is_admin": True, "owner_user": 1}
    assert_error(_send(setup, endpoint, body), 400, "invalid", fields={"is_admin", "owner_user"})
    assert _snapshot() == before


@pytest.mark.parametrize("endpoint", WITH_REQUIRED)
def test_missing_fields_are_named(setup, endpoint):
    before = _snapshot()
    assert_error(_send(setup, endpoint, {}), 400, "invalid", fields=endpoint.required)
    assert _snapshot() == before


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
def test_wrong_types_are_named(setup, endpoint):
    before = _snapshot()
    assert_error(_send(setup, endpoint, endpoint.wrong_types), 400, "invalid", fields=set(endpoint.wrong_types))
    assert _snapshot() == before


@pytest.mark.parametrize("endpoint", WITH_OVERSIZE)
def test_oversize_values_are_named(setup, endpoint):
    before = _snapshot()
    body = {**_resolve(endpoint.valid, setup), **endpoint.oversize}
    assert_error(_send(setup, endpoint, body), 400, "invalid", fields=set(endpoint.oversize))
    assert _snapshot() == before


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
@pytest.mark.parametrize("raw", [b'{"name": ', b"{'single': 'quotes'}", b"\xff\xfe not utf-8", b'{"a": NaN}'])
def test_malformed_json_is_400(setup, endpoint, raw):
    before = _snapshot()
    error = assert_error(_send(setup, endpoint, raw), 400, "invalid")
    assert error["message"] == "Malformed request body."
    assert _snapshot() == before


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
@pytest.mark.parametrize("raw", [b"[]", b'"text"', b"42", b"null"])
def test_a_body_that_is_not_an_object_is_400(setup, endpoint, raw):
    before = _snapshot()
    assert_error(_send(setup, endpoint, raw), 400, "invalid", fields={"non_field_errors"})
    assert _snapshot() == before


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data"])
def test_a_body_that_is_not_json_is_415(setup, endpoint, content_type):
    before = _snapshot()
    body = "&".join(f"{key}={value}" for key, value in _resolve(endpoint.valid, setup).items())
    assert_error(_send(setup, endpoint, body, content_type=content_type), 415, "unsupported_media_type")
    assert _snapshot() == before


# ---------------------------------------------------------------------------------------------
# Values a database could not store, numbers no database could hold, nesting no parser survives
# ---------------------------------------------------------------------------------------------
MEMORY = ENDPOINTS[5]


@pytest.mark.parametrize(
    "raw, fields",
    [
        ('{"context": %(context)d, "content": "nul \\u0000 inside"}', {"content"}),
        ('{"context": %(context)d, "content": "lone \\ud800 surrogate"}', {"content"}),
        ('{"context": %(context)d, "content": "x", "metadata": {"k": "nul \\u0000"}}', {"metadata"}),
        ('{"context": %(context)d, "content": "x", "metadata": {"k\\u0000": 1}}', {"metadata"}),
        ('{"context": %(context)d, "content": "x", "metadata": {"k": "\\udfff"}}', {"metadata"}),
        ('{"context": %(context)d, "content": "x", "tags": ["a\\u0000"]}', {"tags"}),
        ('{"context": %(context)d, "content": "x", "source": "\\ud800"}', {"source"}),
        ('{"context": 99999999999999999999999999, "content": "x"}', {"context"}),
        ('{"context": 1.0, "content": "x"}', {"context"}),
        ('{"context": true, "content": "x"}', {"context"}),
        ('{"context": -1, "content": "x"}', {"context"}),
        ('{"context": %(context)d, "content": "   "}', {"content"}),
        ('{"context": %(context)d, "content": "x", "metadata": ' + '{"a": ' * 25 + "1" + "}" * 25 + "}",
         {"metadata"}),
    ],
)
def test_values_no_database_could_store_are_400(setup, raw, fields):
    before = _snapshot()
    body = (raw % {"context": setup.context.pk}).encode()
    assert_error(_send(setup, MEMORY, body), 400, "invalid", fields=fields)
    assert _snapshot() == before


def test_nesting_too_deep_to_parse_is_400_not_500(setup):
    before = _snapshot()
    body = b'{"context": 1, "content": "x", "metadata": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    error = assert_error(_send(setup, MEMORY, body), 400, "invalid")
    assert error["message"] == "Malformed request body."
    assert _snapshot() == before


@override_settings(MEMORIES_CONTENT_MAX_LENGTH=20, MEMORIES_METADATA_MAX_BYTES=30)
def test_the_limits_follow_the_settings(setup):
    before = _snapshot()
    body = {"context": setup.context.pk, "content": "x" * 21, "metadata": {"k": "v" * 30}}
    error = assert_error(_send(setup, MEMORY, body), 400, "invalid", fields={"content", "metadata"})
    assert "20" in error["fields"]["content"][0]
    assert _snapshot() == before
    ok = _send(setup, MEMORY, {"context": setup.context.pk, "content": "x" * 20, "metadata": {"k": "v"}})
    assert ok.status_code == 201


def test_every_problem_is_reported_at_once(setup):
    body = {"context": "one", "content": "", "kind": "poem", "tags": ["ok", "x" * 51], "colour": "red"}
    error = assert_error(_send(setup, MEMORY, body), 400, "invalid")
    assert set(error["fields"]) == {"context", "content", "kind", "tags", "colour"}
    assert error["fields"]["colour"] == ["Unknown field."]


def test_errors_reveal_no_internals(setup):
    error = assert_error(_send(setup, MEMORY, b'{"context": '), 400, "invalid")
    text = json.dumps(error)
    for leak in ("Traceback", "File \"", "JSONDecodeError", "django", "line 1 column"):
        assert leak not in text
