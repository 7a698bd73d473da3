"""The share, transfer and member endpoints do not tell an existing user of another tenant from an unknown one.

Pen-test finding: anyone (who can create their own organization or personal context) could
enumerate every tenant's usernames by the differing answers. A username is resolved only among
the users the caller shares an organization with (``memories.selectors.user_is_visible_to``);
a hidden existing user gets exactly the answer of a name nobody has: same status, same body
(the request id aside), and nothing is written.
"""

from __future__ import annotations

import pytest

from memories.models import Context, ContextShare, Membership
from tests.memories.api_helpers import url

pytestmark = pytest.mark.django_db


def _body(response) -> dict:
    body = response.json()
    body["error"].pop("request_id", None)
    return body


def _endpoints(world):
    return {
        "share": (url("context-share-list", context_id=world.personal_context.pk), {"permission": "read"}),
        "transfer": (url("context-transfer", context_id=world.personal_context.pk), {}),
        "team member": (url("team-member-list", team_id=world.team.pk), {"role": "viewer"}),
        "organization member": (
            url("organization-member-list", organization_id=world.organization.pk),
            {"role": "viewer"},
        ),
    }


@pytest.mark.parametrize("endpoint", ["share", "transfer", "team member", "organization member"])
def test_a_hidden_user_and_an_unknown_name_get_the_same_answer(world, client_for, make_user, endpoint):
    hidden = make_user("hidden.elsewhere")  # exists, in another tenant only
    make_user("gus.colleague")
    Membership.objects.create(user=hidden, organization=world.other_organization, role="member")
    path, body = _endpoints(world)[endpoint]
    client = client_for(world.owner)
    before = (Context.objects.values_list("owner_user", "scope").order_by("pk")[::1], ContextShare.objects.count(),
              Membership.objects.count())  # fmt: skip

    for_hidden = client.post(path, {**body, "user": hidden.username}, format="json")
    for_unknown = client.post(path, {**body, "user": "nobody.at.all"}, format="json")

    assert for_hidden.status_code == for_unknown.status_code == 400
    assert _body(for_hidden) == _body(for_unknown)
    assert _body(for_unknown)["error"]["fields"] == {"user": ["No active user with this username."]}
    after = (Context.objects.values_list("owner_user", "scope").order_by("pk")[::1], ContextShare.objects.count(),
             Membership.objects.count())  # fmt: skip
    assert after == before


def test_a_user_of_a_shared_organization_is_found(world, client_for, make_user):
    colleague = make_user("cora.colleague")
    Membership.objects.create(user=colleague, team=world.sibling_team, role="viewer")  # a team of Acme counts
    response = client_for(world.owner).post(
        url("context-share-list", context_id=world.personal_context.pk),
        {"user": "Cora.Colleague", "permission": "read"},
        format="json",
    )
    assert response.status_code == 201 and response.json()["user"] == "cora.colleague"


def test_a_user_with_no_organization_sees_only_themselves(make_user, client_for):
    loner, other = make_user("lone.wolf"), make_user("other.wolf")
    client = client_for(loner)
    context = Context.objects.create(name="Mine", scope="personal", owner_user=loner, created_by=loner)
    path = url("context-share-list", context_id=context.pk)
    assert client.post(path, {"user": other.username, "permission": "read"}, format="json").status_code == 400
    assert client.post(path, {"user": "nobody.at.all", "permission": "read"}, format="json").status_code == 400
