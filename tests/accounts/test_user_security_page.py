"""One security page per user in the console: /admin/accounts/user/<id>/security/.

Through Django's test client, with real services and audit events: the page's content for a user
with authenticators, backup codes, sessions, API keys, locks and events; each action with and
without the role's permission (the auditor sees but cannot act: 403 and ``authz.permission_denied``),
without a fresh step-up, on the acting administrator's own session (confirmation first); bad input
(unknown ids, another user's session or key, GET on an action, malformed forms) answered with a
clear 4xx and nothing changed; the links that lead to the page; and a query count that does not
grow with the number of events.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib
import re
from urllib.parse import urlencode

import pytest
from django.apps import apps as global_apps
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

import audit
from accounts import roles
from accounts.models import FailureCounter, TrackedSession, User
from accounts.services import mfa
from accounts.services.sessions import REAUTHENTICATED_AT_KEY, TRACKED_SESSION_KEY
from accounts.testing import login_with_mfa
from api import services as api_services
from api.models import ApiKey
from audit.models import AuditEvent
from audit.services import write_held_events
from core.context import acting_as
from tests.monitoring.conftest import bulk

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple 42"
ROLE_MIGRATION = importlib.import_module("accounts.migrations.0004_security_roles")
ATTACKER_IP = "198.51.100.7"


def page_url(user_id) -> str:
    return reverse("admin:accounts_user_security", args=[user_id])


@dataclasses.dataclass
class World:
    root: User
    carol: User
    dave: User
    session: TrackedSession  # carol's session from her laptop
    other_session: TrackedSession  # dave's
    api_key: ApiKey
    dave_key: ApiKey
    secrets: list[str]  # every secret issued in the fixture: none may reach a page or an event


@pytest.fixture
def world(db) -> World:
    ROLE_MIGRATION.create_roles(global_apps, None)
    now = timezone.now()
    root = User.objects.create_superuser("root-admin", "root@example.org", PASSWORD)
    carol = User.objects.create_user("carol", "carol@example.org", PASSWORD, first_name="Carol")
    dave = User.objects.create_user("dave", "dave@example.org", PASSWORD)
    with acting_as(root):  # privilege changes recorded with root as the actor
        carol.is_staff = True
        carol.save()
        carol.groups.add(Group.objects.get(name=roles.SECURITY_AUDITOR))
    login_with_mfa(Client(), carol)  # an authenticator and a session (no IP: the test client)
    codes = mfa.backup_codes_generate(actor=carol, user=carol, notify=False)
    session = TrackedSession.objects.create(
        user=carol, created_at=now, last_seen_at=now, ip_address="203.0.113.20", user_agent="x",
        device_label="Firefox on Linux", method=TrackedSession.Method.PASSWORD_TOTP, mfa_verified=True,
    )
    login_with_mfa(Client(), dave)
    other_session = TrackedSession.objects.filter(user=dave).get()
    FailureCounter.objects.create(
        kind=FailureCounter.Kind.PASSWORD, username="carol", address="", failure_count=20, lock_count=1,
        last_failure_at=now, locked_until=now + datetime.timedelta(minutes=30),
    )
    FailureCounter.objects.create(
        kind=FailureCounter.Kind.PASSWORD, username="carol", address=ATTACKER_IP, failure_count=3,
        last_failure_at=now,
    )
    issued = api_services.api_key_issue(actor=root, owner=carol, name="ci-runner", scopes=["memories:read"])
    dave_issued = api_services.api_key_issue(actor=root, owner=dave, name="dave-laptop", scopes=["memories:read"])
    with acting_as(carol):
        audit.record(action=audit.Action.PASSWORD_CHANGED, actor=carol, subject=carol, target=carol)
    audit.record(action=audit.Action.LOGIN_FAILED, outcome=audit.Outcome.FAILURE, subject=carol,
                 context={"reason": "wrong_password"})
    write_held_events()
    return World(
        root=root, carol=carol, dave=dave, session=session, other_session=other_session,
        api_key=issued.api_key, dave_key=dave_issued.api_key,
        secrets=[*codes, issued.key, issued.signing_secret, dave_issued.key, dave_issued.signing_secret],
    )


def console_client(role: str) -> tuple[Client, User]:
    """A console session of a staff user with this role ("staff": in neither group), MFA passed, step-up fresh."""
    group = {"auditor": roles.SECURITY_AUDITOR, "administrator": roles.SECURITY_ADMINISTRATOR}.get(role)
    user = User.objects.create_user(f"{role}-user", f"{role}@example.org", PASSWORD, is_staff=True)
    if group:
        user.groups.add(Group.objects.get(name=group))
    client = Client()
    login_with_mfa(client, user)
    write_held_events()
    return client, user


def stale_step_up(client: Client) -> None:
    session = client.session
    session[REAUTHENTICATED_AT_KEY] = timezone.now().timestamp() - 3600
    session.save()


def section(html: str, name: str) -> str:
    match = re.search(rf'<section[^>]*id="usec-{name}".*?</section>', html, re.S)
    assert match, f"section {name} missing"
    return match.group(0)


def state(world: World) -> dict:
    """Everything the page's actions can change."""
    return {
        "locked": FailureCounter.objects.filter(username="carol", locked_until__gt=timezone.now()).exists(),
        "counters": FailureCounter.objects.filter(username="carol").count(),
        "carol_sessions": TrackedSession.objects.filter(user=world.carol, ended_at__isnull=True).count(),
        "laptop_ended": TrackedSession.objects.get(pk=world.session.pk).ended_at is not None,
        "dave_session_ended": TrackedSession.objects.get(pk=world.other_session.pk).ended_at is not None,
        "key_revoked": ApiKey.objects.get(pk=world.api_key.pk).revoked_at is not None,
        "dave_key_revoked": ApiKey.objects.get(pk=world.dave_key.pk).revoked_at is not None,
    }


def new_events(after_id: int) -> list[AuditEvent]:
    write_held_events()
    return list(AuditEvent.objects.filter(id__gt=after_id).order_by("id"))


def last_event_id() -> int:
    write_held_events()
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


# --- the page's content ------------------------------------------------------------------------
def test_the_page_shows_identity_grants_mfa_locks_sessions_keys_and_events(world):
    client, _ = console_client("administrator")
    response = client.get(page_url(world.carol.pk))
    assert response.status_code == 200
    html = response.content.decode()

    identity = section(html, "identity")
    assert "carol@example.org" in identity and "✔ verified" in identity and "✔ active" in identity
    password_event = AuditEvent.objects.get(action="auth.password_changed", subject_id=str(world.carol.pk))
    assert reverse("admin:audit_auditevent_change", args=[password_event.pk]) in identity
    assert "password changed, by" in identity

    privileges = section(html, "privileges")
    staff_event = AuditEvent.objects.get(action="authz.staff_granted", subject_id=str(world.carol.pk))
    group_event = AuditEvent.objects.get(action="authz.group_membership_changed", subject_id=str(world.carol.pk))
    assert (staff_event.actor_username, group_event.actor_username) == ("root-admin", "root-admin")
    staff_row = re.search(r"<tr><th scope=\"row\">Staff.*?</tr>", privileges, re.S).group(0)
    assert reverse("admin:audit_auditevent_change", args=[staff_event.pk]) in staff_row
    assert f'<a href="{page_url(world.root.pk)}">root-admin</a>' in staff_row
    role_row = re.search(r"<tr><th scope=\"row\">Security auditor.*?</tr>", privileges, re.S).group(0)
    assert "(security role)" in role_row
    assert reverse("admin:audit_auditevent_change", args=[group_event.pk]) in role_row
    assert "Superuser" not in privileges  # carol is not one

    mfa_section = section(html, "mfa")
    assert "✔ MFA on: 1 authenticator(s)" in mfa_section
    assert "Test authenticator" in mfa_section and "authenticator app (TOTP" in mfa_section
    assert "10 left" in mfa_section

    locks = section(html, "locks")
    assert "✘ LOCKED until" in locks
    assert "account (every address)" in locks and f"from {ATTACKER_IP}" in locks
    assert reverse("admin:accounts_user_security_unlock", args=[world.carol.pk]) in locks

    sessions = section(html, "sessions")
    assert "Active sessions: 2" in sessions
    assert "Firefox on Linux" in sessions and "203.0.113.20" in sessions
    assert "Password and authenticator code" in sessions
    assert f'name="session" value="{world.session.public_id}"' in sessions
    assert reverse("admin:accounts_user_security_sessions_revoke_all", args=[world.carol.pk]) in sessions
    assert world.other_session.public_id not in html  # dave's session is not on carol's page

    keys = section(html, "api-keys")
    assert "ci-runner" in keys and world.api_key.display_prefix in keys and "memories:read" in keys
    assert f'name="item" value="{world.api_key.prefix}"' in keys
    assert "dave-laptop" not in html

    as_actor = section(html, "events-actor")
    assert "Password changed" in as_actor and "Backup codes generated" in as_actor
    assert reverse("admin:audit_auditevent_changelist") + f"?actor_id={world.carol.pk}" in as_actor
    as_subject = section(html, "events-subject")
    assert "Login failed" in as_subject and "Staff status granted" in as_subject
    assert "Password changed" not in as_subject  # what she did to herself is listed once, as actor
    assert reverse("admin:audit_auditevent_changelist") + f"?subject_id={world.carol.pk}" in as_subject

    for secret in world.secrets:  # backup codes and key secrets never reach the page
        assert secret not in html


def test_a_grant_the_audit_trail_does_not_hold_is_said_to_be_not_recorded(world):
    """A group joined without an event (a raw insert: no m2m signal) is "not recorded", never guessed."""
    group = Group.objects.create(name="Imported operators")
    User.groups.through.objects.bulk_create([User.groups.through(user_id=world.carol.pk, group_id=group.pk)])
    client, _ = console_client("auditor")
    privileges = section(client.get(page_url(world.carol.pk)).content.decode(), "privileges")
    row = re.search(r"<tr><th scope=\"row\">Imported operators.*?</tr>", privileges, re.S).group(0)
    assert "(group)" in row and "not recorded" in row


def test_a_user_without_history_shows_not_recorded_and_nothing_to_unlock(world):
    client, _ = console_client("administrator")
    html = client.get(page_url(world.dave.pk)).content.decode()
    assert "not recorded (no password change or reset in the audit trail" in section(html, "identity")
    assert "None: not staff, in no group, no direct permission." in section(html, "privileges")
    locks = section(html, "locks")
    assert "✔ not locked" in locks and "No failed attempts counted." in locks
    assert "Unlock" not in locks
    assert "no set" in section(html, "mfa")


def test_the_auditor_sees_the_page_without_any_button(world):
    client, _ = console_client("auditor")
    response = client.get(page_url(world.carol.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Firefox on Linux" in html and "ci-runner" in html and "LOCKED" in html
    assert "security/unlock/" not in html and "security/sessions/" not in html and "security/api-keys/" not in html
    assert '<button type="submit"' not in html.split('id="content-main"')[1]


def test_the_page_is_refused_to_staff_without_a_role_and_the_refusal_is_recorded(world):
    client, user = console_client("staff")
    before = last_event_id()
    response = client.get(page_url(world.carol.pk))
    assert response.status_code == 403
    assert "carol@example.org" not in response.content.decode()
    assert [(e.action, e.actor_username, e.outcome, e.context["reason"]) for e in new_events(before)] == [
        ("authz.permission_denied", user.username, "denied", "console_permission")
    ]


def test_the_page_needs_a_console_session_that_passed_mfa(world):
    client = Client()
    client.force_login(world.root)  # a password-only session: the console refuses it
    response = client.get(page_url(world.carol.pk))
    assert response.status_code == 302 and "carol@example.org" not in response.content.decode()


def test_the_page_is_csp_strict(world):
    client, _ = console_client("administrator")
    response = client.get(page_url(world.carol.pk))
    html = response.content.decode()
    nonce = re.search(r'<style nonce="([^"]+)"', html).group(1)
    assert f"'nonce-{nonce}'" in response["Content-Security-Policy"]
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert 'style="' not in html and " onclick=" not in html and " onsubmit=" not in html
    assert "<script>" not in html.split("</head>")[1]


# --- the actions -------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PageAction:
    name: str
    path: str  # after /security/
    data: tuple = ()
    changes: tuple = ()  # (key of state(), value after)
    events: tuple = ()  # (action, outcome) recorded by the service

    def url(self, world: World) -> str:
        return page_url(world.carol.pk) + self.path

    def form(self, world: World) -> dict:
        values = {"session": world.session.public_id, "item": world.api_key.prefix}
        return {name: values.get(value, value) for name, value in self.data}


ACTIONS = [
    PageAction("unlock", "unlock/", changes=(("locked", False), ("counters", 0)),
               events=(("auth.account_unlocked", "success"),)),
    PageAction("revoke one session", "sessions/revoke/", data=(("session", "session"),),
               changes=(("laptop_ended", True), ("carol_sessions", 1)), events=(("auth.session_revoked", "success"),)),
    PageAction("revoke all sessions", "sessions/revoke-all/", changes=(("laptop_ended", True), ("carol_sessions", 0)),
               events=(("auth.session_revoked_all", "success"),)),
    PageAction("revoke an API key", "api-keys/", data=(("item", "item"),), changes=(("key_revoked", True),),
               events=(("api.key_revoked", "success"),)),
]


@pytest.mark.parametrize("action", ACTIONS, ids=[action.name for action in ACTIONS])
def test_the_administrator_acts_through_the_service_and_comes_back_with_a_message(world, action):
    client, administrator = console_client("administrator")
    before, before_id = state(world), last_event_id()
    response = client.post(action.url(world), action.form(world))
    assert response.status_code == 302 and response["Location"] == page_url(world.carol.pk)
    assert state(world) == {**before, **dict(action.changes)}
    recorded = new_events(before_id)
    assert [(e.action, e.outcome, e.actor_username, e.subject_username) for e in recorded] == [
        (name, outcome, administrator.username, "carol") for name, outcome in action.events
    ]
    dump = repr([(e.context, e.target_repr) for e in recorded])
    for secret in world.secrets:
        assert secret not in dump
    page = client.get(page_url(world.carol.pk))
    assert [str(message) for message in page.context["messages"]]  # the outcome, said in words


@pytest.mark.parametrize("role", ["auditor", "staff"])
@pytest.mark.parametrize("action", ACTIONS, ids=[action.name for action in ACTIONS])
def test_without_the_permission_an_action_is_refused_recorded_and_changes_nothing(world, action, role):
    client, user = console_client(role)
    before, before_id = state(world), last_event_id()
    response = client.post(action.url(world), action.form(world))
    assert response.status_code == 403
    assert state(world) == before
    assert [(e.action, e.actor_username, e.context["reason"]) for e in new_events(before_id)] == [
        ("authz.permission_denied", user.username, "console_permission")
    ]


@pytest.mark.parametrize("action", ACTIONS, ids=[action.name for action in ACTIONS])
def test_without_a_fresh_step_up_an_action_sends_to_re_authenticate_and_changes_nothing(world, action):
    client, _ = console_client("administrator")
    stale_step_up(client)
    before, before_id = state(world), last_event_id()
    response = client.post(action.url(world), action.form(world))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:reauthenticate"))
    assert "next=" + page_url(world.carol.pk).replace("/", "%2F") in response["Location"]  # back as a GET
    assert state(world) == before
    assert new_events(before_id) == []


def test_an_api_key_holder_of_change_apikey_may_revoke_too(world):
    """``api.change_apikey`` manages anyone's keys (api.services.api_key_can_manage): the page offers it."""
    client, user = console_client("staff")
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_user", "view_apikey", "change_apikey"])
    )
    response = client.post(page_url(world.carol.pk) + "api-keys/", {"item": world.api_key.prefix})
    assert response.status_code == 302
    assert ApiKey.objects.get(pk=world.api_key.pk).revoked_at is not None


# --- the acting administrator's own session ----------------------------------------------------
def test_revoking_your_own_current_session_asks_first_then_signs_you_out(world):
    client, administrator = console_client("administrator")
    current = TrackedSession.objects.get(pk=client.session[TRACKED_SESSION_KEY])
    url = page_url(administrator.pk) + "sessions/revoke/"
    before_id = last_event_id()

    asked = client.post(url, {"session": current.public_id})
    assert asked.status_code == 200
    html = asked.content.decode()
    assert "This is the session you are using now" in html
    assert 'name="confirm" value="yes"' in html and f'name="session" value="{current.public_id}"' in html
    assert TrackedSession.objects.get(pk=current.pk).ended_at is None and new_events(before_id) == []

    done = client.post(url, {"session": current.public_id, "confirm": "yes"})
    assert done.status_code == 302
    assert done["Location"] == reverse("accounts:login") + "?" + urlencode({"next": page_url(administrator.pk)})
    ended = TrackedSession.objects.get(pk=current.pk)
    assert ended.end_reason == TrackedSession.EndReason.REVOKED
    assert [(e.action, e.actor_username) for e in new_events(before_id)] == [
        ("auth.session_revoked", administrator.username)
    ]
    assert client.get(page_url(administrator.pk)).status_code == 302  # signed out: to the login


def test_revoking_another_session_of_your_own_needs_no_confirmation(world):
    client, administrator = console_client("administrator")
    now = timezone.now()
    other = TrackedSession.objects.create(
        user=administrator, created_at=now, last_seen_at=now, device_label="Phone", method="password+totp",
    )
    response = client.post(page_url(administrator.pk) + "sessions/revoke/", {"session": other.public_id})
    assert response.status_code == 302 and response["Location"] == page_url(administrator.pk)
    assert TrackedSession.objects.get(pk=other.pk).ended_at is not None
    assert TrackedSession.objects.get(pk=client.session[TRACKED_SESSION_KEY]).ended_at is None


def test_revoking_all_your_own_sessions_asks_first(world):
    client, administrator = console_client("administrator")
    url = page_url(administrator.pk) + "sessions/revoke-all/"
    before_id = last_event_id()
    asked = client.post(url)
    assert asked.status_code == 200 and "ends the one you are using now" in asked.content.decode()
    assert TrackedSession.objects.filter(user=administrator, ended_at__isnull=True).count() == 1
    assert new_events(before_id) == []
    done = client.post(url, {"confirm": "yes"})
    assert done.status_code == 302 and done["Location"].startswith(reverse("accounts:login"))
    assert TrackedSession.objects.filter(user=administrator, ended_at__isnull=True).count() == 0
    assert [e.action for e in new_events(before_id)] == ["auth.session_revoked_all"]


def test_a_confirmation_of_someone_elses_session_is_not_needed_nor_a_way_around_it(world):
    """``confirm=yes`` changes nothing about the checks: without permission it is still 403."""
    client, _ = console_client("auditor")
    before = state(world)
    response = client.post(page_url(world.carol.pk) + "sessions/revoke-all/", {"confirm": "yes"})
    assert response.status_code == 403 and state(world) == before


# --- bad input ---------------------------------------------------------------------------------
BAD_INPUT = [
    # (what, path after /admin/accounts/user/, form, expected status, words in the answer)
    ("unknown user", "999999/security/unlock/", {}, 404, "There is no user with that id."),
    ("a user id that is not a number", "carol/security/unlock/", {}, 404, "There is no user with that id."),
    ("unknown user's page", "999999/security/", None, 404, "There is no user with that id."),
    ("another user's session", "{carol}/security/sessions/revoke/", {"session": "{dave_session}"}, 404,
     "carol has no session with that id"),
    ("an unknown session", "{carol}/security/sessions/revoke/", {"session": "A" * 22}, 404,
     "carol has no session with that id"),
    ("no session named", "{carol}/security/sessions/revoke/", {}, 400, "Name one session"),
    ("two sessions named", "{carol}/security/sessions/revoke/", {"session": ["{carol_session}", "{dave_session}"]},
     400, "Name one session"),
    ("a malformed session id", "{carol}/security/sessions/revoke/", {"session": "x' OR 1=1 --"}, 400,
     "Name one session"),
    ("an overlong session id", "{carol}/security/sessions/revoke/", {"session": "a" * 65}, 400, "Name one session"),
    ("a session's row id", "{carol}/security/sessions/revoke/", {"session": "{carol_session_pk}"}, 404,
     "carol has no session with that id"),
    ("another user's API key", "{carol}/security/api-keys/", {"item": "{dave_key}"}, 404,
     "carol has no such item among the api keys"),
    ("no API key named", "{carol}/security/api-keys/", {}, 400, "Name one of the api keys"),
    ("an unknown section", "{carol}/security/no-such-section/", {"item": "abc"}, 404, "This page has no such section."),
]


def _fill(value, world: World):
    if isinstance(value, list):
        return [_fill(each, world) for each in value]
    return value.format(
        carol=world.carol.pk, dave_session=world.other_session.public_id, carol_session=world.session.public_id,
        carol_session_pk=world.session.pk, dave_key=world.dave_key.prefix,
    )


@pytest.mark.parametrize(("what", "path", "form", "status", "words"), BAD_INPUT, ids=[row[0] for row in BAD_INPUT])
def test_bad_input_gets_a_clear_error_and_changes_nothing(world, what, path, form, status, words):
    client, _ = console_client("administrator")
    before, before_id = state(world), last_event_id()
    url = "/admin/accounts/user/" + _fill(path, world)
    if form is None:
        response = client.get(url)
    else:
        response = client.post(url, {name: _fill(value, world) for name, value in form.items()})
    assert response.status_code == status
    html = response.content.decode()
    assert words in html
    assert "Traceback" not in html
    assert state(world) == before
    assert new_events(before_id) == []


@pytest.mark.parametrize("path", ["unlock/", "sessions/revoke/", "sessions/revoke-all/", "api-keys/"])
def test_a_get_of_an_action_is_405_and_changes_nothing(world, path):
    client, _ = console_client("administrator")
    before, before_id = state(world), last_event_id()
    response = client.get(page_url(world.carol.pk) + path + f"?session={world.session.public_id}")
    assert response.status_code == 405 and response["Allow"] == "POST"
    assert "only takes the buttons of a user&#x27;s security page" in response.content.decode()
    assert state(world) == before and new_events(before_id) == []


def test_a_post_to_the_page_itself_is_405(world):
    client, _ = console_client("administrator")
    response = client.post(page_url(world.carol.pk), {"anything": "1"})
    assert response.status_code == 405 and response["Allow"] == "GET, HEAD"


def test_an_action_without_the_csrf_token_is_refused_and_changes_nothing(world):
    client, _ = console_client("administrator")
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = client.cookies
    before = state(world)
    response = strict.post(page_url(world.carol.pk) + "unlock/")
    assert response.status_code == 403 and state(world) == before


def test_an_already_ended_session_is_said_so_and_not_recorded_again(world):
    client, _ = console_client("administrator")
    TrackedSession.objects.filter(pk=world.session.pk).update(ended_at=timezone.now(), end_reason="logout")
    before_id = last_event_id()
    response = client.post(page_url(world.carol.pk) + "sessions/revoke/", {"session": world.session.public_id})
    assert response.status_code == 302
    assert new_events(before_id) == []
    assert "already ended" in str(list(client.get(page_url(world.carol.pk)).context["messages"])[0])


# --- the ways to the page ----------------------------------------------------------------------
def test_the_page_is_linked_from_the_user_list_change_page_sessions_and_counters(world):
    client, _ = console_client("auditor")
    carol_page = page_url(world.carol.pk)
    assert carol_page in client.get("/admin/accounts/user/").content.decode()
    assert carol_page in client.get(f"/admin/accounts/user/{world.carol.pk}/change/").content.decode()
    assert carol_page in client.get("/admin/accounts/trackedsession/").content.decode()
    FailureCounter.objects.create(kind=FailureCounter.Kind.PASSWORD, username="nobody-has-this", failure_count=1)
    counters = client.get("/admin/accounts/failurecounter/").content.decode()
    assert carol_page in counters and "no such account" in counters


def test_the_url_name_takes_the_user_id():
    assert reverse("admin:accounts_user_security", args=[42]) == "/admin/accounts/user/42/security/"


# --- bounded queries ---------------------------------------------------------------------------
def test_the_query_count_is_bounded_and_does_not_grow_with_events(world, django_assert_max_num_queries):
    client, _ = console_client("administrator")

    def render() -> list[dict]:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(page_url(world.carol.pk)).status_code == 200
        return queries.captured_queries

    render()  # the first request of a session also writes its last-seen time and caches permissions
    few = len(render())
    now = timezone.now()
    times = [now - datetime.timedelta(seconds=second) for second in range(2000)]
    bulk(audit.Action.LOGIN_FAILED, times=times, subject=world.carol, ip=ATTACKER_IP)
    bulk(audit.Action.MEMORY_READ, times=times, actor=world.carol)
    with django_assert_max_num_queries(45):
        many = render()
    assert len(many) == few
    audit_reads = [query["sql"] for query in many if AuditEvent._meta.db_table in query["sql"]]
    assert audit_reads, "the grants, the password change and the two event lists read the audit table"
    for sql in audit_reads:
        # Each read is bounded (LIMIT) and walks an index; none counts the table.
        assert "COUNT(" not in sql.upper() and "LIMIT" in sql.upper()
    html = client.get(page_url(world.carol.pk)).content.decode()
    assert html.count("Login failed") <= 25 + 1 and html.count("Memory read") <= 25 + 1


# --- the user list: MFA, locked and last-IP columns; "staff without MFA" and "locked" filters ----
def _listed(client: Client, query: str = "") -> dict[str, dict[str, str]]:
    """The user list's rows: username -> {column (field name): text of its cell}."""
    html = client.get("/admin/accounts/user/" + query).content.decode()
    table = html.split('id="result_list"')[1].split("</table>")[0]
    rows = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table.split("<tbody>")[1], re.S):
        cells = {
            name: re.sub(r"<[^>]+>", "", text).strip()
            for name, text in re.findall(r'<t[hd] class="field-([a-z_]+)[^"]*">(.*?)</t[hd]>', row, re.S)
        }
        rows[cells["username"]] = cells
    return rows


def test_the_user_list_shows_mfa_locked_and_last_ip(world):
    client, _ = console_client("auditor")
    rows = _listed(client)
    carol, dave, root = rows["carol"], rows["dave"], rows["root-admin"]
    assert (carol["mfa_status"], carol["locked_status"], carol["last_ip"]) == ("✔ on", "✘ locked", "203.0.113.20")
    assert (dave["mfa_status"], dave["locked_status"]) == ("✔ on", "-")
    assert (root["mfa_status"], root["last_ip"]) == ("✘ off", "-")


def test_the_user_list_filters_staff_without_mfa_and_locked_accounts(world):
    client, _ = console_client("auditor")
    bare = User.objects.create_user("no-mfa-staff", "nomfa@example.org", PASSWORD, is_staff=True)
    assert set(_listed(client, "?mfa=staff_off")) == {bare.username, "root-admin"}
    assert "carol" in _listed(client, "?mfa=on") and bare.username in _listed(client, "?mfa=off")
    assert set(_listed(client, "?locked=yes")) == {"carol"}
    assert "carol" not in _listed(client, "?locked=no")


def test_the_user_list_reads_its_columns_in_a_bounded_number_of_queries(world, django_assert_max_num_queries):
    client, _ = console_client("auditor")
    client.get("/admin/accounts/user/")
    for index in range(30):
        User.objects.create_user(f"user-{index}", f"user-{index}@example.org")
    with CaptureQueriesContext(connection) as few:
        client.get("/admin/accounts/user/?q=carol")
    with CaptureQueriesContext(connection) as many:
        client.get("/admin/accounts/user/")
    assert len(many) == len(few)


def test_each_part_needs_the_view_permission_of_what_it_shows(world):
    """``accounts.view_user`` alone opens the page, with identity and privileges only."""
    client, user = console_client("staff")
    user.user_permissions.add(Permission.objects.get(codename="view_user"))
    response = client.get(page_url(world.carol.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert "carol@example.org" in section(html, "identity") and "Security auditor" in section(html, "privileges")
    for words in ("You may not see authenticators.", "You may not see lockout counters.",
                  "You may not see sessions.", "You may not see audit events."):
        assert words in html
    assert "Firefox on Linux" not in html and "ci-runner" not in html and 'id="usec-api-keys"' not in html
    assert "Login failed" not in html


def test_a_grant_older_than_the_privilege_events_read_is_not_recorded(world):
    """Only the user's newest ``PRIVILEGE_EVENTS_READ`` privilege events are read: the bound holds."""
    from accounts.selectors import PRIVILEGE_EVENTS_READ

    later = timezone.now() + datetime.timedelta(minutes=1)
    times = [later + datetime.timedelta(seconds=second) for second in range(PRIVILEGE_EVENTS_READ)]
    bulk(audit.Action.USER_PERMISSIONS_CHANGED, times=times, subject=world.carol, target=world.carol,
         context={"removed": ["memories.view_memory"]})
    client, _ = console_client("auditor")
    privileges = section(client.get(page_url(world.carol.pk)).content.decode(), "privileges")
    row = re.search(r"<tr><th scope=\"row\">Security auditor.*?</tr>", privileges, re.S).group(0)
    assert "not recorded" in row


def test_user_ids_by_username_finds_accounts_in_one_query(world, django_assert_num_queries):
    from accounts.selectors import user_ids_by_username

    with django_assert_num_queries(1):
        found = user_ids_by_username(["carol", "dave", "nobody-has-this"])
    assert found == {"carol": world.carol.pk, "dave": world.dave.pk}
    assert user_ids_by_username([]) == {}
