"""Hostile input through the real middleware: stored safely, and it cannot change what the chain
or the client IP say (issue 3, "Bad input")."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.http import HttpResponse
from django.test import RequestFactory

import audit
from audit.models import AuditEvent
from audit.sealing import seal_pending
from audit.verification import verify_chain
from core.middleware import RequestContextMiddleware

pytestmark = pytest.mark.django_db


def _through_middleware(*, actor=None, subject=None, **meta) -> tuple[AuditEvent, HttpResponse]:
    recorded = {}

    def view(request):
        recorded["event"] = audit.record(
            action=audit.Action.LOGIN_FAILED, outcome=audit.Outcome.FAILURE, actor=actor, subject=subject
        )
        return HttpResponse("ok")

    request = RequestFactory().get("/accounts/login/", **meta)
    response = RequestContextMiddleware(view)(request)
    return AuditEvent.objects.get(uuid=recorded["event"].uuid), response


def _chain_verifies() -> bool:
    seal_pending()
    return verify_chain().ok


def test_a_hostile_user_agent_is_escaped_and_truncated():
    agent = "Mozilla/5.0\r\n2026-01-01 INFO admin logged in\x00\x1b]0;pwned\x07\u202e" + "A" * 10000
    event, _ = _through_middleware(HTTP_USER_AGENT=agent)
    assert len(event.user_agent) <= 256
    for forbidden in ("\r", "\n", "\x00", "\x1b", "\x07", "\u202e"):
        assert forbidden not in event.user_agent
    assert event.user_agent.startswith("Mozilla/5.0\\r\\n2026-01-01 INFO admin logged in\\x00\\x1b]0;pwned")
    assert _chain_verifies()


def test_a_10_kb_attempted_username_with_control_characters_is_stored_bounded():
    username = "bob\n\t\x00" + "é" * 10000
    event, _ = _through_middleware(subject=username)
    assert len(event.subject_username) == 150
    assert event.subject_username.startswith("bob\\n\\t\\x00é")
    assert event.subject_username.endswith("...[truncated from 10006 chars]")
    assert _chain_verifies()


def test_a_user_with_a_10_kb_username_is_snapshotted_bounded():
    actor = get_user_model()(pk=99, username="x" * 10000, is_staff=True)
    event, _ = _through_middleware(actor=actor)
    assert len(event.actor_username) == 150
    assert (event.actor_id, event.actor_is_staff) == ("99", True)


@pytest.mark.parametrize(
    "incoming",
    [
        "short",
        "has spaces in it",
        "id\r\nX-Injected: 1",
        "x" * 65,
        "../../etc/passwd",
        "ok-looking-id\x00",
        "<script>alert(1)</script>",
    ],
)
def test_a_malformed_request_id_is_replaced_not_trusted(incoming):
    event, response = _through_middleware(HTTP_X_REQUEST_ID=incoming)
    assert event.request_id != incoming
    assert len(event.request_id) == 32 and event.request_id.isalnum()
    assert response["X-Request-ID"] == event.request_id


def test_a_well_formed_request_id_is_kept_and_echoed():
    event, response = _through_middleware(HTTP_X_REQUEST_ID="edge-7f3a9c2e.01")
    assert event.request_id == "edge-7f3a9c2e.01"
    assert response["X-Request-ID"] == "edge-7f3a9c2e.01"


def test_forged_x_forwarded_for_is_ignored_with_no_trusted_proxy(settings):
    settings.AUDIT_TRUSTED_PROXY_COUNT = 0
    event, _ = _through_middleware(REMOTE_ADDR="198.51.100.23", HTTP_X_FORWARDED_FOR="10.0.0.1, 127.0.0.1")
    assert event.client_ip == "198.51.100.23"


def test_with_one_trusted_proxy_only_the_hop_it_appended_counts(settings):
    settings.AUDIT_TRUSTED_PROXY_COUNT = 1
    # The client forged "127.0.0.1"; our proxy (REMOTE_ADDR) appended the address it saw.
    event, _ = _through_middleware(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="127.0.0.1, 198.51.100.23")
    assert event.client_ip == "198.51.100.23"


def test_with_one_trusted_proxy_a_garbage_hop_gives_no_ip_rather_than_a_forged_one(settings):
    settings.AUDIT_TRUSTED_PROXY_COUNT = 1
    event, _ = _through_middleware(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="127.0.0.1, not-an-ip\r\n")
    assert event.client_ip is None


def test_a_request_that_bypassed_the_proxy_is_not_attributed_to_a_forged_address(settings):
    settings.AUDIT_TRUSTED_PROXY_COUNT = 1
    event, _ = _through_middleware(REMOTE_ADDR="198.51.100.23")
    assert event.client_ip == "198.51.100.23"
