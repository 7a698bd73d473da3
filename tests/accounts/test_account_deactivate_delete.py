"""Deactivate, reactivate and delete an account from the console's per-user security page.

Through Django's test client and the real services: each action needs a fresh step-up and its
permission (``accounts.deactivate_user``, ``accounts.delete_user``), records exactly its events
(the sessions ended and API keys revoked first, each its own event, then the account's event
with the flag's old and new value), and leaves no way in: the account's sessions and API keys
stop working. Refusals (no permission, a stale step-up, one's own account, an account that still
owns contexts, deactivating twice) change nothing.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import TrackedSession, User
from accounts.testing import login_with_mfa
from api.models import ApiKey
from audit.models import AuditEvent
from audit.services import write_held_events
from memories.models import Context
from tests.accounts import test_user_security_page as security_page
from tests.accounts.test_user_security_page import (
    PASSWORD,
    console_client,
    last_event_id,
    new_events,
    page_url,
    stale_step_up,
)

world = security_page.world  # the security page's fixture: carol with sessions, an API key and events

pytestmark = pytest.mark.django_db


def root_console(world) -> Client:
    client = Client()
    login_with_mfa(client, world.root)
    write_held_events()
    return client


def carol_state(world) -> dict:
    return {
        "exists": User.objects.filter(pk=world.carol.pk).exists(),
        "active": User.objects.filter(pk=world.carol.pk, is_active=True).exists(),
        "sessions": TrackedSession.objects.filter(user_id=world.carol.pk, ended_at__isnull=True).count(),
        "keys": ApiKey.objects.filter(user_id=world.carol.pk, revoked_at__isnull=True).count(),
    }


def summary(events: list[AuditEvent]) -> list[tuple[str, str, str, str]]:
    return [(e.action, e.outcome, e.actor_username, e.subject_username) for e in events]


@pytest.mark.audit_coverage("auth.account_deactivated", "auth.session_revoked_all", "api.key_revoked")
def test_deactivating_ends_sessions_revokes_keys_and_records_old_and_new(world):
    client = root_console(world)
    assert carol_state(world)["sessions"] == 2 and carol_state(world)["keys"] == 1
    before_id = last_event_id()
    response = client.post(page_url(world.carol.pk) + "deactivate/")
    assert response.status_code == 302 and response["Location"] == page_url(world.carol.pk)
    assert carol_state(world) == {"exists": True, "active": False, "sessions": 0, "keys": 0}
    recorded = new_events(before_id)
    assert summary(recorded) == [
        ("auth.session_revoked_all", "success", "root-admin", "carol"),
        ("api.key_revoked", "success", "root-admin", "carol"),
        ("auth.account_deactivated", "success", "root-admin", "carol"),
    ]
    assert recorded[-1].context == {
        "ended": 2, "api_keys_revoked": 1, "field": "is_active", "old": True, "new": False,
    }
    dump = repr([(e.context, e.target_repr) for e in AuditEvent.objects.all()])
    for secret in world.secrets:
        assert secret not in dump
    # The account has no way in: no password login, no API key.
    assert Client().post("/accounts/login/", {"username": "carol", "password": PASSWORD}).wsgi_request.user.pk is None
    assert Client().get("/api/v2/memories/", HTTP_AUTHORIZATION=f"Bearer {world.secrets[-4]}").status_code == 401


@pytest.mark.audit_coverage("auth.account_reactivated")
def test_reactivating_lets_the_account_in_again_and_is_recorded(world):
    client = root_console(world)
    client.post(page_url(world.carol.pk) + "deactivate/")
    before_id = last_event_id()
    response = client.post(page_url(world.carol.pk) + "reactivate/")
    assert response.status_code == 302
    assert carol_state(world) == {"exists": True, "active": True, "sessions": 0, "keys": 0}  # nothing revived
    recorded = new_events(before_id)
    assert summary(recorded) == [("auth.account_reactivated", "success", "root-admin", "carol")]
    assert recorded[0].context == {"field": "is_active", "old": False, "new": True}


@pytest.mark.audit_coverage("auth.account_deleted")
def test_deleting_asks_first_then_deletes_and_the_events_keep_the_account(world):
    client = root_console(world)
    before, before_id = carol_state(world), last_event_id()
    asked = client.post(page_url(world.carol.pk) + "delete/")
    assert asked.status_code == 200 and "Delete the account carol?" in asked.content.decode()
    assert carol_state(world) == before and new_events(before_id) == []
    response = client.post(page_url(world.carol.pk) + "delete/", {"confirm": "yes"})
    assert response.status_code == 302 and response["Location"] == reverse("admin:accounts_user_changelist")
    assert carol_state(world) == {"exists": False, "active": False, "sessions": 0, "keys": 0}
    recorded = new_events(before_id)
    assert summary(recorded) == [
        ("auth.session_revoked_all", "success", "root-admin", "carol"),
        ("api.key_revoked", "success", "root-admin", "carol"),
        ("auth.account_deleted", "success", "root-admin", "carol"),
    ]
    deleted = recorded[-1]
    assert deleted.subject_id == str(world.carol.pk) and deleted.target_id == str(world.carol.pk)
    assert deleted.context == {"ended": 2, "api_keys_revoked": 1, "was_staff": True, "was_superuser": False}
    # Her earlier events stay in the trail.
    assert AuditEvent.objects.filter(subject_id=str(world.carol.pk), action="auth.password_changed").exists()


def test_an_account_that_owns_contexts_is_not_deleted_and_nothing_changes(world):
    Context.objects.create(name="Notes", scope="personal", owner_user=world.carol, created_by=world.carol)
    client = root_console(world)
    before, before_id = carol_state(world), last_event_id()
    response = client.post(page_url(world.carol.pk) + "delete/", {"confirm": "yes"})
    assert response.status_code == 409
    html = response.content.decode()
    assert "carol still owns contexts: transfer or delete them first; nothing was changed." in html
    assert "Traceback" not in html
    assert carol_state(world) == before and new_events(before_id) == []


@pytest.mark.parametrize("path", ["deactivate/", "reactivate/", "delete/"])
def test_your_own_account_is_refused_and_nothing_changes(world, path):
    client = root_console(world)
    root = world.root
    before_id = last_event_id()
    response = client.post(page_url(root.pk) + path, {"confirm": "yes"})
    assert response.status_code == 409
    assert User.objects.filter(pk=root.pk, is_active=True).exists()
    assert [e.action for e in new_events(before_id)] == []


def test_deactivating_twice_is_refused_clearly(world):
    client = root_console(world)
    client.post(page_url(world.carol.pk) + "deactivate/")
    before_id = last_event_id()
    response = client.post(page_url(world.carol.pk) + "deactivate/")
    assert response.status_code == 409 and "carol is already deactivated" in response.content.decode()
    assert new_events(before_id) == []


@pytest.mark.parametrize("role", ["auditor", "administrator"])
@pytest.mark.parametrize("path", ["deactivate/", "reactivate/", "delete/"])
@pytest.mark.audit_coverage("authz.permission_denied")
def test_without_the_permission_the_action_is_refused_recorded_and_changes_nothing(world, role, path):
    client, user = console_client(role)
    before, before_id = carol_state(world), last_event_id()
    response = client.post(page_url(world.carol.pk) + path, {"confirm": "yes"})
    assert response.status_code == 403
    assert carol_state(world) == before
    assert [(e.action, e.actor_username, e.context["reason"]) for e in new_events(before_id)] == [
        ("authz.permission_denied", user.username, "console_permission")
    ]
    page = client.get(page_url(world.carol.pk)).content.decode()
    assert "security/deactivate/" not in page and "security/delete/" not in page


@pytest.mark.parametrize("path", ["deactivate/", "reactivate/", "delete/"])
def test_without_a_fresh_step_up_the_action_sends_to_re_authenticate(world, path):
    client = root_console(world)
    stale_step_up(client)
    before, before_id = carol_state(world), last_event_id()
    response = client.post(page_url(world.carol.pk) + path, {"confirm": "yes"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:reauthenticate"))
    assert carol_state(world) == before and new_events(before_id) == []


def test_the_page_offers_the_buttons_to_whoever_holds_the_permissions(world):
    html = root_console(world).get(page_url(world.carol.pk)).content.decode()
    assert reverse("admin:accounts_user_security_deactivate", args=[world.carol.pk]) in html
    assert reverse("admin:accounts_user_security_delete", args=[world.carol.pk]) in html
    own = root_console(world).get(page_url(world.root.pk)).content.decode()
    assert "security/deactivate/" not in own and "security/delete/" not in own


@pytest.mark.parametrize("path", ["deactivate/", "delete/"])
def test_only_a_superuser_may_deactivate_or_delete_a_superuser(world, path):
    """Whoever is granted the permissions without being a superuser cannot remove a superuser."""
    from django.contrib.auth.models import Permission

    client, user = console_client("administrator")
    user.user_permissions.add(*Permission.objects.filter(codename__in=["deactivate_user", "delete_user"]))
    other_root = User.objects.create_superuser("root-two", "root2@example.org", PASSWORD)
    before_id = last_event_id()
    response = client.post(page_url(other_root.pk) + path, {"confirm": "yes"})
    assert response.status_code == 409 and "Only a superuser may" in response.content.decode()
    assert User.objects.filter(pk=other_root.pk, is_active=True).exists()
    assert [e.action for e in new_events(before_id) if e.action != "authz.user_permissions_changed"] == []
    # The same holder may act on an ordinary account.
    assert client.post(page_url(world.dave.pk) + "deactivate/").status_code == 302
    assert not User.objects.get(pk=world.dave.pk).is_active


@pytest.mark.audit_coverage("membership.removed", "context.unshared")
def test_deleting_records_the_memberships_and_shares_the_cascade_removes(world):
    """Deleting an account removes its memberships and shares with it: each removal is on the record."""
    from memories.models import ContextShare, Membership, Organization, Team

    organization = Organization.objects.create(name="Acme", slug="acme")
    team = Team.objects.create(organization=organization, name="Red", slug="red")
    Membership.objects.create(user=world.carol, team=team, role="maintainer")
    Membership.objects.create(user=world.carol, organization=organization, role="member")
    notes = Context.objects.create(name="Dave's notes", scope="personal", owner_user=world.dave, created_by=world.dave)
    ContextShare.objects.create(context=notes, user=world.carol, permission="write", granted_by=world.dave)
    client = root_console(world)
    before_id = last_event_id()
    response = client.post(page_url(world.carol.pk) + "delete/", {"confirm": "yes"})
    assert response.status_code == 302
    assert not Membership.objects.filter(user_id=world.carol.pk).exists()
    assert not ContextShare.objects.filter(user_id=world.carol.pk).exists()
    recorded = new_events(before_id)
    removed = {
        (event.action, event.target_type, event.target_id): event.context
        for event in recorded
        if event.action in ("membership.removed", "context.unshared")
    }
    assert removed == {
        ("membership.removed", "memories.team", str(team.pk)): {
            "role": None,
            "previous_role": "maintainer",
            "scope": "team",
            "reason": "account_deleted",
        },
        ("membership.removed", "memories.organization", str(organization.pk)): {
            "role": None,
            "previous_role": "member",
            "scope": "organization",
            "reason": "account_deleted",
        },
        ("context.unshared", "memories.context", str(notes.pk)): {
            "permission": "write",
            "grantee_type": "user",
            "grantee_id": world.carol.pk,
            "reason": "account_deleted",
        },
    }
    assert {(event.actor_username, event.subject_username) for event in recorded} == {("root-admin", "carol")}
