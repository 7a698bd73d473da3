"""The server's clock stepped forward and back by an hour: sessions, TOTP, lockout and signed requests stay correct.

"Correct" is what fails safe: a step never resurrects an ended session, never accepts a code or a
request twice, never unlocks an account early. Time is moved with time-machine, so every clock
the code reads (Django's ``timezone.now``, ``time.time``) steps together, as a host's would.
"""

from __future__ import annotations

import datetime

import pytest
import time_machine
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import TrackedSession, User
from api import services as api_services
from audit.models import AuditEvent
from memories.models import Context, Membership, Memory, Organization, Role, Team
from tests.accounts.conftest import PASSWORD, enroll, login
from tests.api.conftest import Issued, signed

pytestmark = pytest.mark.django_db

T = datetime.datetime(2026, 6, 1, 12, 0, 0, tzinfo=datetime.UTC)
HOUR = datetime.timedelta(hours=1)


@pytest.fixture
def alice():
    return User.objects.create_user(username="alice", email="alice@example.org", password=PASSWORD)


def _reasons(action: str) -> list[str]:
    return [event.context.get("reason") for event in AuditEvent.objects.filter(action=action).order_by("pk")]


def test_a_session_ended_by_a_forward_step_stays_ended_when_the_clock_steps_back(alice):
    with time_machine.travel(T, tick=False) as clock:
        client = Client(REMOTE_ADDR="192.0.2.10")
        login(client, "alice")
        assert client.get("/accounts/security/").status_code == 200
        clock.move_to(T + HOUR)  # past the 30-minute idle timeout
        assert client.get("/accounts/security/").status_code == 302
        clock.move_to(T + datetime.timedelta(minutes=1))  # back: the session would be fresh again
        assert client.get("/accounts/security/").status_code == 302
    assert TrackedSession.objects.get().end_reason == "idle_timeout"
    assert _reasons("auth.session_expired") == ["idle_timeout"]


def test_a_totp_code_is_never_accepted_twice_whichever_way_the_clock_steps(alice):
    with time_machine.travel(T, tick=False) as clock:
        app, _codes = enroll(alice)
        clock.move_to(T + datetime.timedelta(minutes=5))
        code = app.now()
        client = Client(REMOTE_ADDR="192.0.2.11")
        assert login(client, "alice", code=code).status_code == 302
        clock.move_to(T + datetime.timedelta(minutes=5) - HOUR)  # back an hour
        again = Client(REMOTE_ADDR="192.0.2.11")
        assert login(again, "alice", code=code).status_code == 400  # the same code: refused
        # A code of the stepped-back time is older than the last one accepted: refused as well
        # (django-otp keeps the last accepted time step), until the clock is right again.
        clock.shift(datetime.timedelta(seconds=2))  # past the growing wait after a wrong code
        assert login(Client(REMOTE_ADDR="192.0.2.11"), "alice", code=app.now()).status_code == 400
        clock.move_to(T + datetime.timedelta(minutes=5) + HOUR)  # forward an hour: a fresh code works
        assert login(Client(REMOTE_ADDR="192.0.2.11"), "alice", code=app.now()).status_code == 302
    assert TrackedSession.objects.filter(ended_at__isnull=True).count() == 2  # the two accepted logins
    refused = AuditEvent.objects.filter(action__in=["auth.mfa_verify_failed", "auth.mfa_code_replayed"])
    assert refused.filter(timestamp__lt=T).count() == 2  # both refusals after the step back recorded


def test_a_step_back_never_unlocks_an_account_early(alice):
    with time_machine.travel(T, tick=False) as clock:
        for _ in range(5):  # the per-address limit: locked for the first cool-off (60 s)
            login(Client(REMOTE_ADDR="192.0.2.12"), "alice", password="wrong")
        assert login(Client(REMOTE_ADDR="192.0.2.12"), "alice").status_code == 429
        clock.move_to(T - HOUR)
        assert login(Client(REMOTE_ADDR="192.0.2.12"), "alice").status_code == 429  # still locked
        clock.move_to(T + datetime.timedelta(minutes=2))  # the cool-off is over: the password works
        assert login(Client(REMOTE_ADDR="192.0.2.12"), "alice").status_code == 302


def test_a_signed_request_is_never_accepted_twice_when_the_clock_steps_forward_then_back(alice):
    organization = Organization.objects.create(name="Acme", slug="acme")
    team = Team.objects.create(organization=organization, name="Platform", slug="platform")
    Membership.objects.create(user=alice, organization=organization, role=Role.OWNER)
    Membership.objects.create(user=alice, team=team, role=Role.OWNER)
    context = Context.objects.create(name="Runbooks", scope="team", owner_team=team, created_by=alice)
    with time_machine.travel(T, tick=False) as clock:
        key = api_services.api_key_issue(
            actor=alice, owner=alice, name="cli", scopes=["memories:read", "memories:write"]
        )
        issued = Issued(api_key=key.api_key, key=key.key, signing_secret=key.signing_secret)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.key}")
        memory = Memory.objects.create(context=context, content="a", author=alice)
        path = f"/api/v2/memories/{memory.pk}/"
        headers = signed(issued, "DELETE", path)
        assert client.delete(path, **headers).status_code == 204

        clock.move_to(T + HOUR)
        assert client.delete(path, **headers).status_code == 401  # an hour old: outside the window
        api_services.request_nonces_purge()  # what beat runs every ten minutes, at the wrong time
        clock.move_to(T + datetime.timedelta(seconds=10))  # back: the request's time is fresh again
        replay = client.delete(path, **headers)
    assert replay.status_code == 401, replay.content
    reasons = _reasons("api.request_signature_failed")
    assert reasons == ["timestamp_outside_window", "nonce_replayed"]
