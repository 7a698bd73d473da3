"""API keys: issued once, stored as a keyed hash, scoped, expiring, IP-bound, rotated, revoked, audited."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from api import keys, services
from api.models import ApiKey, ServiceAccount
from audit.models import AuditEvent
from memories.models import Memory

pytestmark = pytest.mark.django_db

MEMORIES = "/api/v2/memories/"


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("pk"))


def assert_no_secret_in_audit(*secrets: str) -> None:
    dump = json.dumps(list(AuditEvent.objects.values()), default=str)
    for secret in secrets:
        assert secret not in dump
        assert secret_part(secret) not in dump


def secret_part(credential: str) -> str:
    """The random part of a key (after ``nvk_<prefix>_``) or a signing secret (after ``nvs_``).

    Not ``split("_")``: the base64url secret may itself contain underscores.
    """
    return credential[len("nvk_") + 12 + 1 :] if credential.startswith("nvk_") else credential[len("nvs_") :]


# --- issuing and storing ----------------------------------------------------------------------
def test_a_key_is_shown_once_and_stored_only_as_a_keyed_hash(alice, issue_key, settings):
    issued = issue_key(alice, scopes=["memories:read"])
    assert keys.KEY_PATTERN.fullmatch(issued.key)
    assert keys.SIGNING_SECRET_PATTERN.fullmatch(issued.signing_secret)
    row = ApiKey.objects.get(pk=issued.api_key.pk)
    assert row.prefix == issued.key.split("_")[1]
    assert issued.key not in row.secret_hash and secret_part(issued.key) not in str(row.__dict__)
    # HMAC-SHA256 under the hash key (derived from SECRET_KEY when API_KEY_HASH_KEY is empty).
    derived = hashlib.sha256(b"ninaivalaigal.api.key-hash\x00" + settings.SECRET_KEY.encode()).digest()
    assert row.secret_hash == hmac.new(derived, issued.key.encode(), hashlib.sha256).hexdigest()
    # The signing secret is stored encrypted: the column holds a ciphertext token, not the secret.
    with connection.cursor() as cursor:
        cursor.execute("SELECT signing_secret FROM api_apikey WHERE id = %s", [row.pk])
        stored = cursor.fetchone()[0]
    assert stored.startswith("nv1:") and issued.signing_secret not in stored
    assert row.signing_secret == issued.signing_secret
    event = events("api.key_issued")[-1]
    assert event.api_key_id == row.prefix and event.context["scopes"] == ["memories:read"]
    assert_no_secret_in_audit(issued.key, issued.signing_secret)


def test_a_configured_hash_key_is_used(alice, issue_key, settings):
    settings.API_KEY_HASH_KEY = "an-operator-chosen-hash-key-of-32-characters"
    issued = issue_key(alice)
    expected = hmac.new(settings.API_KEY_HASH_KEY.encode(), issued.key.encode(), hashlib.sha256).hexdigest()
    assert ApiKey.objects.get(pk=issued.api_key.pk).secret_hash == expected


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"scopes": []}, "scopes"),
        ({"scopes": ["memories:read", "root:everything"]}, "scopes"),
        ({"name": "  "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"allowed_networks": ["not-a-network"]}, "allowed_networks"),
        ({"expires_at": "past"}, "expires_at"),
        ({"expires_at": "too-far"}, "expires_at"),
    ],
)
def test_bad_issue_input_is_refused_and_nothing_is_stored(alice, changes, field):
    arguments = {"actor": alice, "owner": alice, "name": "ci", "scopes": ["memories:read"], **changes}
    if arguments.get("expires_at") == "past":
        arguments["expires_at"] = timezone.now() - datetime.timedelta(seconds=1)
    elif arguments.get("expires_at") == "too-far":
        arguments["expires_at"] = timezone.now() + datetime.timedelta(days=366)
    with pytest.raises(ValidationError) as raised:
        services.api_key_issue(**arguments)
    assert field in raised.value.message_dict
    assert not ApiKey.objects.exists()
    assert not events("api.key_issued")


def test_people_manage_only_their_own_keys_and_admins_anyones(alice, make_user, key_admin, issue_key):
    bob = make_user("bob")
    with pytest.raises(PermissionDenied):
        services.api_key_issue(actor=bob, owner=alice, name="x", scopes=["memories:read"])
    issued = issue_key(alice)
    with pytest.raises(PermissionDenied):
        services.api_key_revoke(actor=bob, api_key=issued.api_key)
    services.api_key_issue(actor=key_admin, owner=alice, name="by admin", scopes=["memories:read"])
    services.api_key_revoke(actor=key_admin, api_key=issued.api_key)
    assert ApiKey.objects.get(pk=issued.api_key.pk).revoked_at is not None


def test_an_account_holds_a_bounded_number_of_keys(alice, issue_key, settings):
    settings.API_KEY_MAX_PER_USER = 2
    issue_key(alice)
    issue_key(alice)
    with pytest.raises(ValidationError):
        issue_key(alice)


# --- authenticating ----------------------------------------------------------------------------
def test_a_valid_key_authenticates_as_its_user(alice, space, issue_key, key_client):
    issued = issue_key(alice, scopes=["memories:read"])
    response = key_client(issued).get(MEMORIES)
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "header",
    [
        "Bearer nvk_aaaaaaaaaaaa_" + "A" * 43,  # unknown prefix
        "Bearer nvk_short",  # malformed
        "Bearer " + "x" * 500,  # not ours at all, but Bearer
        "bearer nvk_aaaaaaaaaaaa_" + "A" * 43,  # scheme is case-insensitive
    ],
)
def test_unknown_or_malformed_keys_are_401_and_recorded(api_client, alice, header):
    response = api_client.get(MEMORIES, HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert response["WWW-Authenticate"].startswith("Bearer")
    [event] = events("api.key_refused")
    assert event.context["reason"] == "unknown_key" and event.outcome == "failure"
    assert "A" * 43 not in json.dumps(event.context)


@pytest.mark.audit_coverage("api.key_refused")
def test_a_wrong_secret_is_refused_like_an_unknown_key(api_client, alice, issue_key):
    issued = issue_key(alice)
    wrong = issued.key[:-4] + ("AAAA" if not issued.key.endswith("AAAA") else "BBBB")
    response = api_client.get(MEMORIES, HTTP_AUTHORIZATION=f"Bearer {wrong}")
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    [event] = events("api.key_refused")
    assert event.context["reason"] == "wrong_secret"
    assert event.context["attempted_prefix"] == issued.prefix
    assert event.api_key_id is None  # the caller did not prove they hold this key
    assert_no_secret_in_audit(issued.key, wrong)


def test_no_credentials_is_401_with_a_bearer_challenge(api_client, db):
    response = api_client.get(MEMORIES)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    [event] = events("api.request_rejected")
    assert event.context["reason"] == "not_authenticated"


@pytest.mark.parametrize("state", ["expired", "revoked", "inactive_user"])
def test_expired_revoked_and_deactivated_keys_are_refused(alice, issue_key, key_client, state):
    issued = issue_key(alice)
    if state == "expired":
        ApiKey.objects.filter(pk=issued.api_key.pk).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    elif state == "revoked":
        services.api_key_revoke(actor=alice, api_key=issued.api_key, reason="leaked")
    else:
        alice.is_active = False
        alice.save()
    response = key_client(issued).get(MEMORIES)
    assert response.status_code == 401
    event = events("api.key_refused")[-1]
    assert event.context["reason"] == state and event.outcome == "denied"
    assert event.api_key_id == issued.prefix


def test_the_ip_allowlist_is_enforced_with_the_one_client_ip(alice, issue_key, key_client, settings):
    issued = issue_key(alice, allowed_networks=["203.0.113.0/24"])
    client = key_client(issued)
    assert client.get(MEMORIES, REMOTE_ADDR="203.0.113.9").status_code == 200
    refused = client.get(MEMORIES, REMOTE_ADDR="198.51.100.7")
    assert refused.status_code == 401
    assert events("api.key_refused")[-1].context["reason"] == "network_not_allowed"
    # A forged X-Forwarded-For does not pick the IP (no trusted proxy configured).
    forged = client.get(MEMORIES, REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert forged.status_code == 401
    settings.AUDIT_TRUSTED_PROXY_COUNT = 1
    proxied = client.get(MEMORIES, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert proxied.status_code == 200


@pytest.mark.audit_coverage("api.key_used")
def test_last_use_is_written_at_most_once_per_interval(alice, issue_key, key_client, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    issued = issue_key(alice, scopes=["memories:read"])
    client = key_client(issued)
    for _ in range(5):
        assert client.get(MEMORIES, REMOTE_ADDR="192.0.2.10").status_code == 200
    row = ApiKey.objects.get(pk=issued.api_key.pk)
    assert row.last_used_ip == "192.0.2.10" and row.last_used_at is not None
    assert len(events("api.key_used")) == 1
    with CaptureQueriesContext(connection) as queries:
        client.get(MEMORIES, REMOTE_ADDR="192.0.2.11")
    assert not any(q["sql"].startswith("UPDATE") and "api_apikey" in q["sql"] for q in queries.captured_queries)
    time_machine.shift(61)
    client.get(MEMORIES, REMOTE_ADDR="192.0.2.11")
    assert ApiKey.objects.get(pk=issued.api_key.pk).last_used_ip == "192.0.2.11"
    assert len(events("api.key_used")) == 2


def test_a_key_in_the_query_string_is_refused_and_recorded_without_its_secret(alice, issue_key, api_client):
    issued = issue_key(alice)
    for query in (f"?api_key={issued.key}", f"?q={issued.key}", "?access_token=whatever"):
        response = api_client.get(MEMORIES + query)
        assert response.status_code == 400, query
        assert response.json()["error"]["code"] == "credentials_in_url"
    refused = events("api.key_refused")
    assert len(refused) == 3
    assert refused[0].context["reason"] == "credentials_in_url"
    assert refused[0].context["key_prefix"] == issued.prefix
    assert_no_secret_in_audit(issued.key)
    # Even with a valid key in the header, a key in the URL is refused.
    response = api_client.get(MEMORIES + f"?api_key={issued.key}", HTTP_AUTHORIZATION=f"Bearer {issued.key}")
    assert response.status_code == 400


# --- scopes ------------------------------------------------------------------------------------
def test_scopes_narrow_a_key(alice, space, issue_key, key_client):
    reader = key_client(issue_key(alice, scopes=["memories:read"]))
    assert reader.get(MEMORIES).status_code == 200
    response = reader.post(MEMORIES, {"context_id": space.context.pk, "content": "x"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"
    assert not Memory.objects.exists()
    event = events("authz.permission_denied")[-1]
    assert event.context["reason"] == "insufficient_scope"
    assert event.context["required_scope"] == "memories:write"
    assert reader.get("/api/v2/contexts/").status_code == 403


def test_head_needs_the_scope_of_get(alice, space, issue_key, key_client):
    """api/permissions.py: HEAD (like OPTIONS) needs GET's scope, no more and no less."""
    reader = key_client(issue_key(alice, scopes=["memories:read"]))
    assert reader.head(MEMORIES).status_code == 200
    writer = key_client(issue_key(alice, scopes=["memories:write"], name="writer"))
    assert writer.head(MEMORIES).status_code == 403
    [event] = events("authz.permission_denied")
    assert event.context["reason"] == "insufficient_scope" and event.context["required_scope"] == "memories:read"


def test_a_method_no_scope_names_refuses_every_key_once(alice, space, issue_key, key_client):
    """Fail closed: a view that declares no scope for a method refuses keys, even with every scope."""
    issued = issue_key(alice)  # every scope
    response = key_client(issued).get(f"/api/v2/contexts/{space.context.pk}/transfer/")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"
    [event] = events("authz.permission_denied")  # recorded once, not again by the error handler
    assert event.context["reason"] == "no_scope_for_endpoint"
    assert event.context["required_scope"] == "" and event.context["status"] == 403
    assert event.api_key_id == issued.prefix and event.actor_id == str(alice.pk)


def test_a_key_never_does_more_than_its_user(alice, make_user, space, issue_key, key_client):
    bob = make_user("bob")
    bob_client = key_client(issue_key(bob))  # every scope
    response = bob_client.get(f"/api/v2/contexts/{space.context.pk}/")
    assert response.status_code == 404


def test_a_session_is_not_limited_by_scopes(alice, space, client_for_user):
    client = client_for_user(alice)
    assert client.post(MEMORIES, {"context_id": space.context.pk, "content": "x"}, format="json").status_code == 201


@pytest.fixture
def client_for_user():
    from rest_framework.test import APIClient

    def make(user):
        client = APIClient()
        client.force_login(user)
        return client

    return make


# --- rotation and revocation -------------------------------------------------------------------
@pytest.mark.audit_coverage("api.key_rotated")
def test_rotation_issues_a_successor_and_keeps_the_old_key_for_the_overlap(alice, issue_key, key_client, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    old = issue_key(alice, scopes=["memories:read"], allowed_networks=["192.0.2.0/24"])
    rotated = services.api_key_rotate(actor=alice, api_key=old.api_key, overlap_seconds=3600)
    new_row = rotated.api_key
    assert new_row.rotated_from_id == old.api_key.pk
    assert new_row.scopes == ["memories:read"] and new_row.allowed_networks == ["192.0.2.0/24"]
    assert rotated.key != old.key and rotated.signing_secret != old.signing_secret
    assert ApiKey.objects.get(pk=old.api_key.pk).status() == "expiring"
    old_client = key_client(old)
    new_client = key_client(type(old)(rotated.api_key, rotated.key, rotated.signing_secret))
    assert old_client.get(MEMORIES, REMOTE_ADDR="192.0.2.1").status_code == 200
    assert new_client.get(MEMORIES, REMOTE_ADDR="192.0.2.1").status_code == 200
    time_machine.shift(3601)
    assert old_client.get(MEMORIES, REMOTE_ADDR="192.0.2.1").status_code == 401
    assert events("api.key_refused")[-1].context["reason"] == "expired"
    assert new_client.get(MEMORIES, REMOTE_ADDR="192.0.2.1").status_code == 200
    [event] = events("api.key_rotated")
    assert event.context["successor"] == new_row.prefix and event.context["overlap_seconds"] == 3600
    assert_no_secret_in_audit(old.key, rotated.key, rotated.signing_secret)


def test_a_rotated_key_cannot_be_rotated_twice_and_overlap_is_bounded(alice, issue_key, settings):
    issued = issue_key(alice)
    with pytest.raises(ValidationError):
        services.api_key_rotate(actor=alice, api_key=issued.api_key, overlap_seconds=10**9)
    with pytest.raises(ValidationError):
        services.api_key_rotate(actor=alice, api_key=issued.api_key, overlap_seconds=-1)
    services.api_key_rotate(actor=alice, api_key=issued.api_key, overlap_seconds=60)
    with pytest.raises(ValidationError):
        services.api_key_rotate(actor=alice, api_key=issued.api_key)
    assert ApiKey.objects.count() == 2


def test_revocation_is_immediate_idempotent_and_audited_once(alice, issue_key, key_client):
    issued = issue_key(alice)
    services.api_key_revoke(actor=alice, api_key=issued.api_key, reason="laptop stolen")
    services.api_key_revoke(actor=alice, api_key=issued.api_key, reason="again")
    assert key_client(issued).get(MEMORIES).status_code == 401
    [event] = events("api.key_revoked")
    assert event.context == {"reason": "laptop stolen"}


# --- service accounts --------------------------------------------------------------------------
def test_service_accounts_cannot_sign_in_and_act_only_through_keys(key_admin, space, issue_key, key_client, client):
    account = services.service_account_create(actor=key_admin, name="CI deployer", description="builds")
    assert account.user.username == "svc-ci-deployer"
    assert not account.user.has_usable_password()
    assert not client.login(username="svc-ci-deployer", password="")
    from memories.models import Membership, Role

    Membership.objects.create(user=account.user, team=space.team, role=Role.MEMBER)
    issued = issue_key(account.user, actor=key_admin, scopes=["memories:write", "memories:read"])
    response = key_client(issued).post(MEMORIES, {"context_id": space.context.pk, "content": "deployed"}, format="json")
    assert response.status_code == 201
    assert response.json()["author"] == "svc-ci-deployer"
    assert events("api.key_issued")[-1].context["service_account"] is True
    # The service account cannot manage its own keys; nobody without the permission can create one.
    with pytest.raises(PermissionDenied):
        services.api_key_revoke(actor=account.user, api_key=issued.api_key)
    with pytest.raises(PermissionDenied):
        services.service_account_create(actor=space.owner, name="sneaky")
    assert ServiceAccount.objects.count() == 1
