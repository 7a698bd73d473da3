"""SMTP down while security emails are due: they wait in the outbox and all go out when it returns."""

from __future__ import annotations

import datetime
import email

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.models import SecurityEmail, SecurityEmailStatus
from accounts.tasks import security_emails_deliver
from audit.actions import Action
from audit.models import AuditEvent
from tests.monitoring.receivers import SMTPServer
from tests.support.servers import free_port

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def smtp_settings(settings):
    port = free_port()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 5
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    return port


def test_a_lockout_email_during_an_smtp_outage_is_retried_and_sent_once_smtp_returns(client, smtp_settings):
    get_user_model().objects.create_user(username="alice", email="alice@example.org", password="x" * 20)
    for _ in range(5):  # the address limit: the fifth failure locks alice out from this address
        response = client.post(
            "/accounts/login/", {"username": "alice", "password": "wrong"}, REMOTE_ADDR="198.51.100.9"
        )
        assert response.status_code in (200, 429)
    [queued] = SecurityEmail.objects.filter(kind="account_locked")
    # The hand-off after commit tried at once and failed; the row waits with its reason, nothing lost.
    assert queued.status == SecurityEmailStatus.PENDING and queued.attempts == 1
    assert queued.last_error == "ConnectionRefusedError"
    assert queued.next_attempt_at > timezone.now()

    # Beat's minute run while SMTP is still down: not due yet, nothing tried, nothing lost.
    security_emails_deliver.delay()
    queued.refresh_from_db()
    assert queued.attempts == 1

    with SMTPServer(port=smtp_settings) as smtp:
        with time_machine.travel(queued.next_attempt_at + datetime.timedelta(seconds=1)):
            security_emails_deliver.delay()  # what beat sends every minute
            security_emails_deliver.delay()  # and a minute later: nothing is sent twice
        messages = list(smtp.messages)

    [envelope] = messages
    assert envelope.rcpt_tos == ["alice@example.org"]
    message = email.message_from_bytes(envelope.content)
    assert message["Subject"] == "Your account was locked after failed sign-in attempts"
    queued.refresh_from_db()
    assert queued.status == SecurityEmailStatus.SENT and queued.attempts == 2 and queued.last_error == ""
    sent = AuditEvent.objects.filter(action=Action.SECURITY_NOTIFICATION_SENT.value, subject_username="alice")
    assert sent.count() == 1
