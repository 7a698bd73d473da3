"""On PostgreSQL: 50 parallel wrong passwords against one account are stopped at the threshold exactly."""

from __future__ import annotations

import threading

import pytest
from django.db import connections

from accounts.models import FailureCounter
from accounts.services.authentication import Result, password_check

pytestmark = [pytest.mark.postgresql, pytest.mark.django_db(transaction=True)]


def test_fifty_parallel_wrong_passwords_lock_at_the_threshold(django_user_model, settings):
    settings.ACCOUNTS_LOCKOUT_ADDRESS_FAILURE_LIMIT = 5
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]  # slow enough to overlap
    django_user_model.objects.create_user(username="target", email="t@example.org", password="the right one 123")
    barrier = threading.Barrier(50)
    results: list[Result] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def attempt():
        try:
            barrier.wait()
            check = password_check(username="TARGET", password="wrong guess", client_ip="203.0.113.5")
            with lock:
                results.append(check.result)
        except BaseException as error:  # reported below
            with lock:
                errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=attempt) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == 50
    # Exactly the threshold reached the password hasher; every other attempt was refused unhashed.
    assert results.count(Result.BAD_CREDENTIALS) + results.count(Result.LOCKED) == 50
    evaluated = FailureCounter.objects.get(address="203.0.113.5")
    assert evaluated.lock_count == 1 and evaluated.locked_until is not None
    from audit.models import AuditEvent

    wrong = AuditEvent.objects.filter(action="auth.login_failed", context__reason="bad_credentials").count()
    assert wrong == 5
    assert AuditEvent.objects.filter(action="auth.account_locked").count() == 1
