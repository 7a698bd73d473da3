"""API v1: organizations, teams and their members."""

from __future__ import annotations

import pytest

from memories.models import Membership, Organization, Team
from tests.memories.api_helpers import assert_error, url

pytestmark = pytest.mark.django_db

# The two families of member endpoints behave the same; each test runs on both.
TARGETS = ["team", "organization"]


def _target(world, kind: str):
    return world.team if kind == "team" else world.organization


def _members_url(world, kind: str) -> str:
    target = _target(world, kind)
    return url(f"{kind}-member-list", **{f"{kind}_id": target.pk})


def _member_url(world, kind: str, user_id: int) -> str:
    target = _target(world, kind)
    return url(f"{kind}-member-detail", **{f"{kind}_id": target.pk, "user_id": user_id})


# ---------------------------------------------------------------------------------------------
# Organizations and teams
# ---------------------------------------------------------------------------------------------
def test_organizations_list_create_retrieve(world, make_user, client_for):
    founder = make_user()
    client = client_for(founder)
    assert client.get(url("organization-list")).json()["count"] == 0
    response = client.post(url("organization-list"), {"name": "Initech", "slug": "initech"}, format="json")
    assert response.status_code == 201
    organization_id = response.json()["id"]
    assert client.get(url("organization-list")).json()["results"][0]["slug"] == "initech"
    assert client.get(url("organization-detail", organization_id=organization_id)).json()["name"] == "Initech"
    assert_error(client.get(url("organization-detail", organization_id=world.organization.pk)), 404, "not_found")
    assert Membership.objects.get(organization_id=organization_id).role == "owner"


def test_organization_slug_taken_or_malformed(world, client_for):
    client = client_for(world.owner)
    for slug in ("acme", "ACME", "no spaces", "ü-nicode", ""):
        response = client.post(url("organization-list"), {"name": "Again", "slug": slug}, format="json")
        assert_error(response, 400, "invalid", fields={"slug"})
    assert Organization.objects.count() == 2


def test_teams_list_create_retrieve(world, make_user, client_for):
    admin = make_user()
    world.grant(admin, "admin", organization=world.organization)
    client = client_for(admin)
    assert {item["slug"] for item in client.get(url("team-list")).json()["results"]} == {"platform", "research"}
    response = client.post(
        url("team-list"), {"organization": world.organization.pk, "name": "Security", "slug": "security"},
        format="json",
    )
    assert response.status_code == 201, response.content
    team_id = response.json()["id"]
    assert client.get(url("team-detail", team_id=team_id)).json()["organization"] == world.organization.pk
    assert Membership.objects.get(team_id=team_id).user == admin
    assert_error(client.get(url("team-detail", team_id=world.other_team.pk)), 404, "not_found")


def test_team_create_needs_administer_on_the_organization(world, make_user, client_for):
    member = make_user()
    world.grant(member, "member", organization=world.organization)
    client = client_for(member)
    body = {"organization": world.organization.pk, "name": "X", "slug": "x"}
    assert_error(client.post(url("team-list"), body, format="json"), 403, "permission_denied")
    body["organization"] = world.other_organization.pk
    assert_error(client.post(url("team-list"), body, format="json"), 404, "not_found")
    assert Team.objects.count() == 3


def test_team_slug_taken(world, client_for):
    response = client_for(world.owner).post(
        url("team-list"), {"organization": world.organization.pk, "name": "P", "slug": "platform"}, format="json"
    )
    assert_error(response, 400, "invalid", fields={"slug"})


# ---------------------------------------------------------------------------------------------
# Members
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", TARGETS)
def test_members_list(world, make_user, client_for, kind):
    viewer = make_user("vera.viewer")
    world.grant(viewer, "viewer", **{kind: _target(world, kind)})
    response = client_for(viewer).get(_members_url(world, kind))
    assert response.status_code == 200
    assert {(item["username"], item["role"]) for item in response.json()["results"]} == {
        (world.owner.username, "owner"),
        ("vera.viewer", "viewer"),
    }
    assert_error(client_for(make_user()).get(_members_url(world, kind)), 404, "not_found")


@pytest.mark.parametrize("kind", TARGETS)
def test_member_add_set_role_remove(world, make_user, client_for, kind, acquaint):
    newcomer = make_user("nina.new")
    acquaint(world.owner, newcomer)
    client = client_for(world.owner)
    response = client.post(_members_url(world, kind), {"user": "Nina.New", "role": "member"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["user_id"] == newcomer.pk
    response = client.put(_member_url(world, kind, newcomer.pk), {"role": "maintainer"}, format="json")
    assert response.status_code == 200
    assert response.json()["role"] == "maintainer"
    assert client.delete(_member_url(world, kind, newcomer.pk)).status_code == 204
    assert not Membership.objects.filter(user=newcomer, **{kind: _target(world, kind)}).exists()
    assert_error(client.delete(_member_url(world, kind, newcomer.pk)), 404, "not_found")


@pytest.mark.parametrize("kind", TARGETS)
def test_member_add_errors(world, make_user, client_for, kind):
    client = client_for(world.owner)
    before = Membership.objects.count()
    assert_error(
        client.post(_members_url(world, kind), {"user": "ghost", "role": "member"}, format="json"),
        400, "invalid", fields={"user"},
    )
    assert_error(
        client.post(_members_url(world, kind), {"user": world.owner.username, "role": "member"}, format="json"),
        400, "invalid", fields={"user"},
    )
    assert_error(
        client.post(_members_url(world, kind), {"user": world.owner.username, "role": "emperor"}, format="json"),
        400, "invalid", fields={"role"},
    )
    assert Membership.objects.count() == before


@pytest.mark.parametrize("kind", TARGETS)
def test_admins_manage_members_up_to_their_own_role(world, make_user, client_for, kind, acquaint):
    admin, member, newcomer = make_user(), make_user(), make_user()
    world.grant(admin, "admin", **{kind: _target(world, kind)})
    world.grant(member, "member", **{kind: _target(world, kind)})
    acquaint(admin, newcomer)
    client = client_for(admin)
    assert_error(
        client.post(_members_url(world, kind), {"user": newcomer.username, "role": "owner"}, format="json"),
        403, "permission_denied",
    )
    assert_error(client.put(_member_url(world, kind, member.pk), {"role": "owner"}, format="json"),
                 403, "permission_denied")
    assert_error(client.put(_member_url(world, kind, world.owner.pk), {"role": "viewer"}, format="json"),
                 403, "permission_denied")
    assert_error(client.delete(_member_url(world, kind, world.owner.pk)), 403, "permission_denied")
    assert client.put(_member_url(world, kind, member.pk), {"role": "admin"}, format="json").status_code == 200


@pytest.mark.parametrize("kind", TARGETS)
def test_non_admins_cannot_manage_members_but_may_leave(world, make_user, client_for, kind, acquaint):
    maintainer, other, newcomer = make_user(), make_user(), make_user()
    world.grant(maintainer, "maintainer", **{kind: _target(world, kind)})
    world.grant(other, "viewer", **{kind: _target(world, kind)})
    acquaint(maintainer, newcomer)
    client = client_for(maintainer)
    assert_error(
        client.post(_members_url(world, kind), {"user": newcomer.username, "role": "viewer"}, format="json"),
        403, "permission_denied",
    )
    assert_error(client.put(_member_url(world, kind, other.pk), {"role": "member"}, format="json"),
                 403, "permission_denied")
    assert_error(client.delete(_member_url(world, kind, other.pk)), 403, "permission_denied")
    assert client.delete(_member_url(world, kind, maintainer.pk)).status_code == 204
    stranger = client_for(make_user())
    assert_error(stranger.put(_member_url(world, kind, other.pk), {"role": "member"}, format="json"),
                 404, "not_found")
    assert_error(stranger.delete(_member_url(world, kind, other.pk)), 404, "not_found")


@pytest.mark.parametrize("kind", TARGETS)
def test_the_last_owner_stays(world, client_for, kind):
    client = client_for(world.owner)
    assert_error(client.put(_member_url(world, kind, world.owner.pk), {"role": "admin"}, format="json"),
                 400, "invalid", fields={"role"})
    error = assert_error(client.delete(_member_url(world, kind, world.owner.pk)), 400, "invalid",
                         fields={"non_field_errors"})
    assert "last owner" in error["fields"]["non_field_errors"][0]
    assert Membership.objects.get(user=world.owner, **{kind: _target(world, kind)}).role == "owner"
