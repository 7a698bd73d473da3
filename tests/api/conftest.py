"""Fixtures of the API security tests: users, keys, signed requests, and the leak scanner."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.cache import caches
from rest_framework.test import APIClient

from api import services
from api.client import signature_headers
from api.scopes import SCOPES
from memories.models import Context, Membership, Organization, Role, Team
from tests.api.leak_scanner import secret_leak_scanner  # noqa: F401  (the fixture, used below)

_numbers = itertools.count(1)


@pytest.fixture(autouse=True)
def _scan_every_response(secret_leak_scanner):  # noqa: F811
    """Every response in tests/api is scanned for secrets."""


@pytest.fixture(autouse=True)
def _fresh_api_cache():
    """Throttle counters and cached nonces start empty in every test."""
    caches["api"].clear()
    yield
    caches["api"].clear()


@pytest.fixture
def make_user(db):
    def make(username: str | None = None, **extra):
        name = username or f"apiuser{next(_numbers)}"
        return get_user_model().objects.create_user(
            username=name, email=f"{name}@example.test", password="correct horse battery staple", **extra
        )

    return make


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def key_admin(make_user):
    """A staff user allowed to manage anyone's keys and create service accounts."""
    user = make_user("kim.keyadmin", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="api",
            codename__in=["add_apikey", "change_apikey", "view_apikey", "add_serviceaccount", "view_serviceaccount"],
        )
    )
    return get_user_model().objects.get(pk=user.pk)


@dataclass
class Issued:
    """A key issued for a test: the row, the key string and the signing secret."""

    api_key: object
    key: str
    signing_secret: str

    @property
    def prefix(self) -> str:
        return self.api_key.prefix


@pytest.fixture
def issue_key():
    """Issue a real key through the service: ``issue_key(user, scopes=[...])``."""

    def issue(owner, *, scopes=None, actor=None, **extra) -> Issued:
        issued = services.api_key_issue(
            actor=actor or owner,
            owner=owner,
            name=extra.pop("name", "test key"),
            scopes=scopes or list(SCOPES),
            **extra,
        )
        return Issued(api_key=issued.api_key, key=issued.key, signing_secret=issued.signing_secret)

    return issue


@pytest.fixture
def key_client():
    """An APIClient that sends ``Authorization: Bearer <key>`` on every request."""

    def make(issued: Issued) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.key}")
        return client

    return make


def signed(issued: Issued, method: str, path: str, body: bytes = b"", **overrides) -> dict:
    """The signature headers of the reference client, as test-client keyword arguments."""
    headers = signature_headers(
        key=issued.key, signing_secret=issued.signing_secret, method=method, path=path, body=body, **overrides
    )
    return {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}


@dataclass
class Space:
    owner: object
    organization: Organization
    team: Team
    context: Context


@pytest.fixture
def space(alice) -> Space:
    """Alice owns an organization, a team and a team context."""
    organization = Organization.objects.create(name="Acme", slug="acme")
    team = Team.objects.create(organization=organization, name="Platform", slug="platform")
    Membership.objects.create(user=alice, organization=organization, role=Role.OWNER)
    Membership.objects.create(user=alice, team=team, role=Role.OWNER)
    context = Context.objects.create(name="Runbooks", scope="team", owner_team=team, created_by=alice)
    return Space(owner=alice, organization=organization, team=team, context=context)
