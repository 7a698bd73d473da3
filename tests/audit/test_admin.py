"""The audit console: read-only, filterable, searchable on indexes, no full-table COUNT."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

import audit
from audit.models import AuditEvent
from audit.sealing import seal_pending
from core import context as request_context

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:audit_auditevent_changelist")


def verified_login(client, user) -> None:
    """Log ``user`` in with a session that has passed MFA (the console requires it)."""
    from django_otp import DEVICE_ID_SESSION_KEY

    from accounts.models import TOTPDevice

    device = TOTPDevice.objects.create(user=user, name="test authenticator", confirmed=True, key="00" * 20)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()


@pytest.fixture
def console(client):
    admin_user = get_user_model().objects.create_superuser(username="console", email="c@example.com", password="z" * 20)
    verified_login(client, admin_user)
    return client


@pytest.fixture
def events(console, user):
    """Three events of an incident (the console's own set-up may have recorded others before)."""
    with request_context.bound(request_id="incident-request-01", client_ip="198.51.100.9"):
        failed = audit.record(action=audit.Action.LOGIN_FAILED, outcome=audit.Outcome.FAILURE, subject="mallory")
        exported = audit.record(action=audit.Action.CONTEXT_EXPORTED, actor=user, context={"count": 3})
    with request_context.bound(request_id="other-request-0002", client_ip="2001:db8::7"):
        succeeded = audit.record(action=audit.Action.LOGIN_SUCCEEDED, actor=user)
    seal_pending()
    return [AuditEvent.objects.get(pk=event.pk) for event in (failed, exported, succeeded)]


def test_changelist_shows_events_newest_first(console, events):
    response = console.get(CHANGELIST)
    assert response.status_code == 200
    rows = list(response.context["cl"].result_list)
    assert [event.pk for event in rows[:3]] == [events[2].pk, events[1].pk, events[0].pk]
    sequences = [event.sequence for event in rows]
    assert sequences == sorted(sequences, reverse=True)


def test_filters_on_action_and_outcome(console, events):
    response = console.get(CHANGELIST, {"outcome": "failure"})
    assert [event.action for event in response.context["cl"].result_list] == ["auth.login_failed"]
    response = console.get(CHANGELIST, {"action": "context.exported"})
    assert [event.action for event in response.context["cl"].result_list] == ["context.exported"]


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("198.51.100.9", {"auth.login_failed", "context.exported"}),
        ("2001:DB8:0::7", {"auth.login_succeeded"}),
        ("incident-request-01", {"auth.login_failed", "context.exported"}),
        ("ALI", {"context.exported", "auth.login_succeeded"}),
        ("mall", {"auth.login_failed"}),
        ("nobody", set()),
        ("%", set()),
    ],
)
def test_search_by_ip_request_id_and_username_prefix(console, events, term, expected):
    response = console.get(CHANGELIST, {"q": term})
    assert {event.action for event in response.context["cl"].result_list} == expected


def test_links_from_an_event_to_the_incident_views(console, events):
    exported = events[1]
    response = console.get(reverse("admin:audit_auditevent_change", args=[exported.pk]))
    assert response.status_code == 200
    content = response.content.decode()
    assert "request_id=incident-request-01" in content and f"actor_id={exported.actor_id}" in content
    response = console.get(CHANGELIST, {"request_id": "incident-request-01"})
    assert len(response.context["cl"].result_list) == 2
    response = console.get(CHANGELIST, {"actor_id": exported.actor_id})
    shown = {event.action for event in response.context["cl"].result_list}
    assert shown == {"context.exported", "auth.login_succeeded"}


def test_the_console_is_read_only(console, events):
    event = events[0]
    assert console.get(reverse("admin:audit_auditevent_add")).status_code == 403
    assert console.post(reverse("admin:audit_auditevent_delete", args=[event.pk])).status_code == 403
    response = console.post(reverse("admin:audit_auditevent_change", args=[event.pk]), {"outcome": "success"})
    assert response.status_code == 403
    page = console.get(reverse("admin:audit_auditevent_change", args=[event.pk])).content.decode()
    assert 'name="_save"' not in page
    assert AuditEvent.objects.get(pk=event.pk).outcome == "failure"


def test_staff_without_the_view_permission_sees_nothing(client, events):
    staff = get_user_model().objects.create_user(username="helpdesk", password="h" * 20, is_staff=True)
    verified_login(client, staff)
    assert client.get(CHANGELIST).status_code == 403


def test_the_count_is_capped_and_never_over_the_whole_table(console, user, settings):
    settings.AUDIT_ADMIN_COUNT_LIMIT = 5
    for _ in range(12):
        audit.record(action=audit.Action.MEMORY_READ, actor=user)
    seal_pending()
    with CaptureQueriesContext(connection) as queries:
        response = console.get(CHANGELIST)
    assert response.status_code == 200
    assert "More than 5 events match" in response.content.decode()
    counts = [query["sql"] for query in queries if "COUNT(" in query["sql"].upper()]
    assert counts and all("LIMIT" in sql.upper() for sql in counts), counts
    assert not any("DISTINCT" in query["sql"].upper() for query in queries)
