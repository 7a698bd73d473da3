"""Fixtures for the memories tests: people, an organization with teams, and their contexts."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from memories.models import Context, ContextShare, Membership, Memory, MemoryTag, Organization, Role, Team

_numbers = itertools.count(1)


@pytest.fixture
def make_user(db):
    """Create an active user; ``make_user("alice")`` or ``make_user()`` for a fresh name."""

    def make(username: str | None = None, **extra):
        name = username or f"person{next(_numbers)}"
        return get_user_model().objects.create_user(
            username=name, email=f"{name}@example.test", password="correct horse battery staple", **extra
        )

    return make


@dataclass
class World:
    """One organization with two teams, a second organization, and a context of every scope."""

    organization: Organization
    team: Team
    sibling_team: Team
    other_organization: Organization
    other_team: Team
    owner: object  # owns the organization and both teams, and has a personal context
    organization_context: Context
    team_context: Context
    sibling_team_context: Context
    personal_context: Context
    other_context: Context

    def grant(self, user, role: str, *, team: Team | None = None, organization: Organization | None = None):
        """Give ``user`` ``role`` in a team or an organization (directly, bypassing services)."""
        return Membership.objects.create(user=user, role=role, team=team, organization=organization)


@pytest.fixture
def world(make_user) -> World:
    """Data written directly with the ORM so the permission tests do not depend on the services."""
    owner = make_user("olga.owner")
    organization = Organization.objects.create(name="Acme", slug="acme")
    team = Team.objects.create(organization=organization, name="Platform", slug="platform")
    sibling_team = Team.objects.create(organization=organization, name="Research", slug="research")
    other_organization = Organization.objects.create(name="Globex", slug="globex")
    other_team = Team.objects.create(organization=other_organization, name="Ops", slug="ops")
    Membership.objects.create(user=owner, organization=organization, role=Role.OWNER)
    Membership.objects.create(user=owner, team=team, role=Role.OWNER)
    Membership.objects.create(user=owner, team=sibling_team, role=Role.OWNER)
    globex_owner = make_user("gus.globex")
    Membership.objects.create(user=globex_owner, organization=other_organization, role=Role.OWNER)
    Membership.objects.create(user=globex_owner, team=other_team, role=Role.OWNER)
    return World(
        organization=organization,
        team=team,
        sibling_team=sibling_team,
        other_organization=other_organization,
        other_team=other_team,
        owner=owner,
        organization_context=Context.objects.create(
            name="Handbook", scope="organization", owner_organization=organization, created_by=owner
        ),
        team_context=Context.objects.create(name="Runbooks", scope="team", owner_team=team, created_by=owner),
        sibling_team_context=Context.objects.create(
            name="Experiments", scope="team", owner_team=sibling_team, created_by=owner
        ),
        personal_context=Context.objects.create(
            name="Scratchpad", scope="personal", owner_user=owner, created_by=owner
        ),
        other_context=Context.objects.create(
            name="Globex ops", scope="team", owner_team=other_team, created_by=globex_owner
        ),
    )


@pytest.fixture
def make_memory():
    """Create a memory directly (with tags), bypassing the services."""

    def make(context: Context, *, content: str = "remember this", kind: str = "note", tags=(), author=None, **extra):
        memory = Memory.objects.create(context=context, content=content, kind=kind, author=author, **extra)
        MemoryTag.objects.bulk_create([MemoryTag(memory=memory, name=name) for name in tags])
        return memory

    return make


@pytest.fixture
def client_for():
    """An API client logged in as the given user."""

    def make(user) -> APIClient:
        client = APIClient()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def make_share():
    """Share a context directly (bypassing the services)."""

    def make(context: Context, *, permission: str, user=None, team=None, granted_by=None) -> ContextShare:
        return ContextShare.objects.create(
            context=context, permission=permission, user=user, team=team, granted_by=granted_by
        )

    return make


# ---------------------------------------------------------------------------------------------
# The API security layer's test rules (tests/api covers the layer itself)
# ---------------------------------------------------------------------------------------------
from tests.api.leak_scanner import secret_leak_scanner  # noqa: E402, F401  (the fixture, used below)


@pytest.fixture(autouse=True)
def _scan_every_response(secret_leak_scanner):  # noqa: F811
    """Every API response in the memories tests is scanned for secrets (keys, hashes, ciphertext...)."""


@pytest.fixture(autouse=True)
def _no_deprecation_registry(settings):
    """The memories tests exercise v1 as the domain's API; v1's deprecation headers, counts and
    audit events are the API layer's business and are tested in tests/api (test_versioning.py)."""
    settings.API_DEPRECATIONS = []
