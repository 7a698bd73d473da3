"""API v1: contexts, their shares, transfer and export."""

from __future__ import annotations

import pytest

from memories.models import Context, ContextShare, Memory
from tests.memories.api_helpers import assert_error, url

pytestmark = pytest.mark.django_db


def test_anonymous_requests_are_refused_with_the_envelope(api_client, world):
    response = api_client.get(url("context-list"))
    assert response.status_code in (401, 403)
    assert_error(response, response.status_code, response.json()["error"]["code"])
    assert response.json()["error"]["code"] in ("not_authenticated", "permission_denied")


def test_list_shows_visible_contexts_with_my_role(world, make_user, make_share, client_for):
    user = make_user()
    world.grant(user, "maintainer", team=world.team)
    make_share(world.organization_context, permission="read", user=user)
    response = client_for(user).get(url("context-list"))
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    by_name = {item["name"]: item for item in body["results"]}
    assert by_name["Runbooks"]["role"] == "maintainer"
    assert by_name["Runbooks"]["owner"] == {"type": "team", "id": world.team.pk, "name": "Platform"}
    assert by_name["Handbook"]["role"] == "viewer"
    assert by_name["Handbook"]["scope"] == "organization"


def test_list_is_paginated(world, client_for):
    for index in range(7):
        Context.objects.create(name=f"ctx {index:02}", scope="personal", owner_user=world.owner)
    client = client_for(world.owner)
    first = client.get(url("context-list"), {"page_size": 5}).json()
    assert first["count"] == 11
    assert len(first["results"]) == 5
    assert first["next"] and first["previous"] is None
    second = client.get(url("context-list"), {"page_size": 5, "page": 3}).json()
    assert len(second["results"]) == 1
    assert_error(client.get(url("context-list"), {"page": 99}), 404, "not_found")


def test_retrieve(world, make_user, client_for):
    viewer = make_user()
    world.grant(viewer, "viewer", organization=world.organization)
    response = client_for(viewer).get(url("context-detail", context_id=world.team_context.pk))
    assert response.status_code == 200
    assert response.json()["role"] == "viewer"
    assert response.json()["created_by"] == world.owner.username


def test_an_invisible_context_is_404_exactly_like_a_missing_one(world, make_user, client_for):
    client = client_for(make_user())
    invisible = client.get(url("context-detail", context_id=world.team_context.pk))
    missing = client.get(url("context-detail", context_id=999_999))
    huge = client.get(url("context-detail", context_id=10**30))
    for response in (invisible, missing, huge):
        assert_error(response, 404, "not_found")
    assert invisible.json()["error"]["message"] == missing.json()["error"]["message"]


@pytest.mark.parametrize(
    "body, expected_owner",
    [
        ({"name": "Mine", "scope": "personal"}, "user"),
        ({"name": "Ours", "scope": "team", "team": "TEAM"}, "team"),
        ({"name": "Everyone's", "scope": "organization", "organization": "ORG"}, "organization"),
    ],
)
def test_create(world, client_for, body, expected_owner):
    body = {
        key: {"TEAM": world.team.pk, "ORG": world.organization.pk}.get(value, value) for key, value in body.items()
    }
    response = client_for(world.owner).post(url("context-list"), body, format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["owner"]["type"] == expected_owner
    assert data["role"] == "owner"
    assert Context.objects.filter(pk=data["id"], name=body["name"]).exists()


def test_create_in_a_team_needs_administer(world, make_user, client_for):
    member = make_user()
    world.grant(member, "maintainer", team=world.team)
    client = client_for(member)
    assert_error(
        client.post(url("context-list"), {"name": "x", "scope": "team", "team": world.team.pk}, format="json"),
        403,
        "permission_denied",
    )
    assert_error(
        client.post(url("context-list"), {"name": "x", "scope": "team", "team": world.other_team.pk}, format="json"),
        404,
        "not_found",
    )
    assert Context.objects.count() == 5


def test_create_with_an_owner_that_does_not_match_the_scope(world, client_for):
    response = client_for(world.owner).post(
        url("context-list"), {"name": "x", "scope": "personal", "team": world.team.pk}, format="json"
    )
    assert_error(response, 400, "invalid", fields={"team"})
    response = client_for(world.owner).post(url("context-list"), {"name": "x", "scope": "team"}, format="json")
    assert_error(response, 400, "invalid", fields={"team"})
    assert Context.objects.count() == 5


@pytest.mark.parametrize("method", ["put", "patch"])
def test_update_renames(world, client_for, method):
    client = client_for(world.owner)
    response = getattr(client, method)(
        url("context-detail", context_id=world.team_context.pk), {"name": "Renamed"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["name"] == "Renamed"
    world.team_context.refresh_from_db()
    assert world.team_context.name == "Renamed"


def test_put_needs_every_field_and_patch_none(world, client_for):
    client = client_for(world.owner)
    path = url("context-detail", context_id=world.team_context.pk)
    assert_error(client.put(path, {}, format="json"), 400, "invalid", fields={"name"})
    assert client.patch(path, {}, format="json").status_code == 200
    world.team_context.refresh_from_db()
    assert world.team_context.name == "Runbooks"


def test_update_and_delete_need_administer(world, make_user, client_for):
    maintainer = make_user()
    world.grant(maintainer, "maintainer", team=world.team)
    client = client_for(maintainer)
    path = url("context-detail", context_id=world.team_context.pk)
    assert_error(client.patch(path, {"name": "x"}, format="json"), 403, "permission_denied")
    assert_error(client.patch(path, {}, format="json"), 403, "permission_denied")
    assert_error(client.delete(path), 403, "permission_denied")
    stranger = client_for(make_user())
    assert_error(stranger.patch(path, {"name": "x"}, format="json"), 404, "not_found")
    assert_error(stranger.delete(path), 404, "not_found")
    world.team_context.refresh_from_db()
    assert world.team_context.name == "Runbooks"


def test_delete(world, make_memory, client_for):
    make_memory(world.team_context)
    response = client_for(world.owner).delete(url("context-detail", context_id=world.team_context.pk))
    assert response.status_code == 204
    assert not Context.objects.filter(pk=world.team_context.pk).exists()
    assert not Memory.objects.exists()


# ---------------------------------------------------------------------------------------------
# Shares
# ---------------------------------------------------------------------------------------------
def test_share_with_a_user_and_a_team_then_list_and_withdraw(world, make_user, client_for, acquaint):
    friend = make_user("Friend.Person")
    acquaint(world.owner, friend)
    client = client_for(world.owner)
    path = url("context-share-list", context_id=world.team_context.pk)

    response = client.post(path, {"user": " FRIEND.person ", "permission": "write"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["user"] == "friend.person"
    assert response.json()["permission"] == "write"
    assert response.json()["granted_by"] == world.owner.username
    response = client.post(path, {"team": world.sibling_team.pk, "permission": "read"}, format="json")
    assert response.status_code == 201
    team_share_id = response.json()["id"]

    listing = client.get(path).json()
    assert listing["count"] == 2
    assert {item["team"] for item in listing["results"]} == {None, world.sibling_team.pk}

    # Shared with "write": the friend can now write but not share further.
    friend_client = client_for(friend)
    assert friend_client.post(
        url("memory-list"), {"context": world.team_context.pk, "content": "hello"}, format="json"
    ).status_code == 201
    assert_error(friend_client.get(path), 403, "permission_denied")

    response = client.delete(url("context-share-detail", context_id=world.team_context.pk, share_id=team_share_id))
    assert response.status_code == 204
    assert ContextShare.objects.count() == 1


def test_sharing_again_replaces_the_grant(world, make_user, client_for, acquaint):
    friend = make_user()
    acquaint(world.owner, friend)
    client = client_for(world.owner)
    path = url("context-share-list", context_id=world.team_context.pk)
    client.post(path, {"user": friend.username, "permission": "read"}, format="json")
    client.post(path, {"user": friend.username, "permission": "admin"}, format="json")
    assert list(ContextShare.objects.values_list("permission", flat=True)) == ["admin"]


def test_share_errors(world, make_user, client_for):
    client = client_for(world.owner)
    path = url("context-share-list", context_id=world.team_context.pk)
    assert_error(client.post(path, {"user": "nobody", "permission": "read"}, format="json"), 400, "invalid",
                 fields={"user"})
    assert_error(client.post(path, {"permission": "read"}, format="json"), 400, "invalid", fields={"user", "team"})
    assert_error(
        client.post(path, {"user": "x", "team": 1, "permission": "read"}, format="json"),
        400,
        "invalid",
        fields={"user", "team"},
    )
    assert_error(
        client.post(path, {"team": world.other_team.pk, "permission": "read"}, format="json"), 404, "not_found"
    )
    assert not ContextShare.objects.exists()


def test_sharing_needs_the_share_right(world, make_user, make_share, client_for):
    maintainer = make_user()
    world.grant(maintainer, "maintainer", team=world.team)
    share = make_share(world.team_context, permission="read", user=make_user())
    client = client_for(maintainer)
    assert_error(
        client.post(
            url("context-share-list", context_id=world.team_context.pk),
            {"user": world.owner.username, "permission": "admin"},
            format="json",
        ),
        403,
        "permission_denied",
    )
    assert_error(
        client.delete(url("context-share-detail", context_id=world.team_context.pk, share_id=share.pk)),
        403,
        "permission_denied",
    )
    # A share id under the wrong context does not exist there.
    assert_error(
        client_for(world.owner).delete(
            url("context-share-detail", context_id=world.sibling_team_context.pk, share_id=share.pk)
        ),
        404,
        "not_found",
    )
    assert ContextShare.objects.count() == 1


# ---------------------------------------------------------------------------------------------
# Transfer and export
# ---------------------------------------------------------------------------------------------
def test_transfer_to_a_user_a_team_and_an_organization(world, make_user, client_for, acquaint):
    heir = make_user()
    acquaint(world.owner, heir)
    client = client_for(world.owner)
    path = url("context-transfer", context_id=world.personal_context.pk)
    response = client.post(path, {"team": world.team.pk}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["scope"] == "team"
    response = client.post(path, {"organization": world.organization.pk}, format="json")
    assert response.json()["owner"] == {"type": "organization", "id": world.organization.pk, "name": "Acme"}
    # To a user it is an offer (202); the context moves when they accept.
    offer = client.post(path, {"user": heir.username}, format="json")
    assert offer.status_code == 202, offer.content
    assert client.get(url("context-detail", context_id=world.personal_context.pk)).json()["scope"] == "organization"
    response = client_for(heir).post(url("transfer-offer-accept", offer_id=offer.json()["id"]), {}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["scope"] == "personal"
    assert response.json()["owner"]["name"] == heir.username
    assert response.json()["role"] == "owner"
    # The previous owner has no role left on it.
    assert_error(client.get(url("context-detail", context_id=world.personal_context.pk)), 404, "not_found")


def test_transfer_is_for_owners_only(world, make_user, client_for):
    admin = make_user()
    world.grant(admin, "admin", team=world.team)
    response = client_for(admin).post(
        url("context-transfer", context_id=world.team_context.pk), {"user": admin.username}, format="json"
    )
    assert_error(response, 403, "permission_denied")
    assert_error(
        client_for(world.owner).post(
            url("context-transfer", context_id=world.team_context.pk), {"team": world.other_team.pk}, format="json"
        ),
        404,
        "not_found",
    )
    assert_error(
        client_for(world.owner).post(url("context-transfer", context_id=world.team_context.pk), {}, format="json"),
        400,
        "invalid",
        fields={"user", "team", "organization"},
    )
    world.team_context.refresh_from_db()
    assert (world.team_context.scope, world.team_context.owner_team) == ("team", world.team)


def test_export(world, make_user, make_memory, client_for):
    make_memory(world.team_context, content="one", tags=["a"])
    make_memory(world.team_context, content="two")
    maintainer, member = make_user(), make_user()
    world.grant(maintainer, "maintainer", team=world.team)
    world.grant(member, "member", team=world.team)
    path = url("context-export", context_id=world.team_context.pk)
    response = client_for(maintainer).get(path)
    assert response.status_code == 200
    body = response.json()
    assert body["context"]["id"] == world.team_context.pk
    assert [memory["content"] for memory in body["memories"]] == ["one", "two"]
    assert body["memories"][0]["tags"] == ["a"]
    assert body["exported_at"]
    assert_error(client_for(member).get(path), 403, "permission_denied")
    assert_error(client_for(make_user()).get(path), 404, "not_found")
