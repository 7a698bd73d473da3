"""Fixtures of the monitoring tests: synthetic audit events at controlled times."""

from __future__ import annotations

import datetime

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.cache import cache

import audit
from audit.chain import CONTENT_FIELDS, content_mac
from audit.models import AuditEvent
from audit.services import build_event, write_held_events
from core import context as request_context

NOW = datetime.datetime(2031, 3, 12, 14, 30, tzinfo=datetime.UTC)


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path):
    """Fresh cache (baselines are cached per hour), own audit folder, no outside recipients."""
    cache.clear()
    settings.AUDIT_DIR = str(tmp_path / "audit")
    settings.MONITORING_ALERT_EMAILS = []
    settings.MONITORING_WEBHOOK_URL = ""
    yield
    cache.clear()


@pytest.fixture
def now():
    """The test's "now": time stands still there unless a test moves it."""
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def record(action, *, at: datetime.datetime, ip: str | None = None, agent: str = "", **kwargs) -> AuditEvent:
    """Record one event through ``audit.record`` as if it happened at ``at`` from ``ip``.

    Written at once (not with the test's transaction, which never commits) so it has its id.
    """
    with time_machine.travel(at, tick=False), request_context.bound(client_ip=ip, user_agent=agent):
        event = audit.record(action=action, **kwargs)
    write_held_events()
    return event


def bulk(action, *, times, ip: str | None = None, agent: str = "", **kwargs) -> list[AuditEvent]:
    """Insert many events at the given times in one statement (volume: baselines, benchmarks).

    Built by ``audit.services.build_event`` (so sanitised and MAC'd like any other), then
    re-timed; nothing is announced, so no real-time detection runs for them.
    """
    events = []
    with request_context.bound(client_ip=ip, user_agent=agent):
        for moment in times:
            event = build_event(action=action, **kwargs)
            event.timestamp = moment
            event.content_mac = content_mac({name: getattr(event, name) for name in CONTENT_FIELDS})
            events.append(event)
    return AuditEvent.objects.bulk_create(events, batch_size=2000)


@pytest.fixture
def make_user(db):
    def make(username: str, **extra):
        return get_user_model().objects.create_user(
            username=username, email=f"{username}@example.org", password="correct horse battery staple", **extra
        )

    return make


@pytest.fixture
def security_admin(make_user):
    """A superuser with an email address: receives alert emails by default, may triage."""
    return make_user("sec-admin", is_staff=True, is_superuser=True)


@pytest.fixture
def console(client, security_admin):
    """A test client signed in to the admin as the security admin, past MFA.

    Staff must have passed MFA (the accounts middleware): the session is bound to a confirmed
    authenticator the way django-otp's ``login()`` binds it.
    """
    import secrets

    from django_otp import DEVICE_ID_SESSION_KEY

    from accounts.models import TOTPDevice

    device = TOTPDevice.objects.create(user=security_admin, name="Phone", confirmed=True, key=secrets.token_hex(20))
    client.force_login(security_admin)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def events_of(action, **filters):
    return list(AuditEvent.objects.filter(action=audit.Action(action).value, **filters).order_by("id"))
