"""The security-email outbox: written with its cause, sent after commit, retried, never a secret at rest."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import transaction
from django.utils import timezone

from accounts.models import SecurityEmail, SecurityEmailStatus
from accounts.services import notifications

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice():
    return get_user_model().objects.create_user(username="alice", email="alice@example.org", password="x" * 20)


def test_an_email_is_sent_only_after_its_transaction_commits(alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        notifications.notification_schedule(user=alice, kind="password_changed")
        assert mail.outbox == []  # not before the commit
    assert [message.subject for message in mail.outbox] == ["Your password was changed"]
    assert SecurityEmail.objects.get().status == SecurityEmailStatus.SENT


def test_a_rolled_back_change_sends_nothing_and_leaves_no_row(alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        notifications.notification_schedule(user=alice, kind="password_changed")
        raise RuntimeError("the change failed")
    assert mail.outbox == [] and not SecurityEmail.objects.exists()


def test_a_reset_link_is_made_when_sending_and_never_stored(alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        notifications.notification_schedule(user=alice, kind="password_reset", base_url="https://console.example")
    [message] = mail.outbox
    link = next(word for word in message.body.split() if "/password/reset/" in word)
    token = link.rstrip("/").rsplit("/", 1)[-1]
    row = SecurityEmail.objects.values().get()
    assert len(token) > 20 and token not in repr(row)


def test_a_failed_send_is_retried_with_doubling_backoff_up_to_the_cap(alice, settings, monkeypatch):
    settings.ACCOUNTS_EMAIL_RETRY_BASE_SECONDS = 30
    settings.ACCOUNTS_EMAIL_RETRY_MAX_SECONDS = 100
    assert [notifications.email_backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 100, 100]
    notifications.notification_schedule(user=alice, kind="password_changed")

    def refuse(self, *args, **kwargs):
        raise ConnectionRefusedError("SMTP down")

    monkeypatch.setattr("django.core.mail.backends.locmem.EmailBackend.send_messages", refuse)
    before = timezone.now()
    assert notifications.security_emails_deliver() == {"sent": 0, "failed": 1, "pruned": 0}
    row = SecurityEmail.objects.get()
    assert row.status == SecurityEmailStatus.PENDING and row.attempts == 1
    assert row.last_error == "ConnectionRefusedError"
    assert row.next_attempt_at >= before + datetime.timedelta(seconds=30)
    assert notifications.security_emails_deliver()["failed"] == 0  # not due yet: not tried
    monkeypatch.undo()
    SecurityEmail.objects.update(next_attempt_at=timezone.now())
    assert notifications.security_emails_deliver()["sent"] == 1
    assert len(mail.outbox) == 1


def test_a_row_claimed_by_a_worker_that_died_is_sent_again_after_the_claim_timeout(alice):
    notifications.notification_schedule(user=alice, kind="password_changed")
    now = timezone.now()
    SecurityEmail.objects.update(status=SecurityEmailStatus.SENDING, claimed_at=now - datetime.timedelta(minutes=1))
    assert notifications.security_emails_deliver()["sent"] == 0  # another worker may still be sending it
    SecurityEmail.objects.update(claimed_at=now - notifications.CLAIM_TIMEOUT - datetime.timedelta(seconds=1))
    assert notifications.security_emails_deliver()["sent"] == 1
    assert SecurityEmail.objects.get().status == SecurityEmailStatus.SENT


def test_sent_rows_are_pruned_after_the_keep_period_and_pending_rows_never(alice, settings):
    settings.ACCOUNTS_EMAIL_KEEP_SENT_DAYS = 7
    old = timezone.now() - datetime.timedelta(days=30)
    notifications.notification_schedule(user=alice, kind="password_changed")
    notifications.notification_schedule(user=alice, kind="email_changed")
    notifications.security_emails_deliver()
    SecurityEmail.objects.filter(kind="password_changed").update(sent_at=old)
    waiting = notifications.notification_schedule(user=alice, kind="new_login", context={"device": "Firefox"})
    later = timezone.now() + datetime.timedelta(hours=1)
    SecurityEmail.objects.filter(pk=waiting.pk).update(created_at=old, next_attempt_at=later)
    assert notifications.security_emails_deliver()["pruned"] == 1
    assert sorted(SecurityEmail.objects.values_list("kind", flat=True)) == ["email_changed", "new_login"]


def test_an_unknown_kind_is_refused_before_anything_is_written(alice):
    with pytest.raises(ValueError, match="unknown notification kind"):
        notifications.notification_schedule(user=alice, kind="nonsense")
    assert not SecurityEmail.objects.exists()
