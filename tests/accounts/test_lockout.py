"""Lockout: per-account and per-(account, IP) counters, growing cool-offs, notifications, unlock."""

from __future__ import annotations

import datetime
import re

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command

from accounts.models import FailureCounter
from accounts.services import lockout
from tests.accounts.conftest import PASSWORD, START, events

pytestmark = pytest.mark.django_db


def _fail(client, username="alice", times=1, address="198.51.100.1"):
    response = None
    for _ in range(times):
        response = client.post("/accounts/login/", {"username": username, "password": "wrong"}, REMOTE_ADDR=address)
    return response


@pytest.mark.audit_coverage("auth.account_locked")
def test_username_variants_share_one_counter_and_lock_at_the_threshold(
    client, user, django_capture_on_commit_callbacks
):
    with time_machine.travel(START, tick=False), django_capture_on_commit_callbacks(execute=True):
        for variant in ["alice", "ALICE", " alice", "ａｌｉｃｅ", "Alice "]:
            response = _fail(client, variant)
        assert response.status_code == 429
        assert b"Too many failed sign-in attempts. Try again at 2026-03-02 09:01:00 UTC" in response.content
        # Even the right password is refused while locked, without checking it.
        response = client.post(
            "/accounts/login/", {"username": "alice", "password": PASSWORD}, REMOTE_ADDR="198.51.100.1"
        )
        assert response.status_code == 429
    locked = events("auth.account_locked")
    assert len(locked) == 1 and locked[0]["context"]["scope"] == "address" and locked[0]["subject_username"] == "alice"
    assert events("auth.login_failed")[-1]["context"]["reason"] == "locked"
    assert [message.subject for message in mail.outbox] == ["Your account was locked after failed sign-in attempts"]
    assert "2026-03-02 09:01:00 UTC" in mail.outbox[0].body


def test_locked_page_does_not_reveal_whether_the_account_exists(client, user):
    with time_machine.travel(START, tick=False):
        existing = _fail(client, "alice", times=6)
        unknown = _fail(client, "nobody-here", times=6)
    assert existing.status_code == unknown.status_code == 429

    def comparable(response, username: bytes) -> bytes:
        return re.sub(rb'name="csrfmiddlewaretoken" value="[^"]+"', b"", response.content.replace(username, b"X"))

    assert comparable(existing, b"alice") == comparable(unknown, b"nobody-here")


def test_cooloffs_grow_and_the_count_restarts_after_each_lock(client, user, settings):
    settings.ACCOUNTS_LOCKOUT_ACCOUNT_FAILURE_LIMIT = 100
    with time_machine.travel(START, tick=False) as machine:
        expected = [60, 300, 1800, 7200, 43200, 43200]
        for cooloff in expected:
            _fail(client, times=5)
            row = FailureCounter.objects.get(address="198.51.100.1")
            assert row.locked_until == datetime.datetime.now(tz=datetime.UTC) + datetime.timedelta(seconds=cooloff)
            machine.shift(datetime.timedelta(seconds=cooloff - 1))
            assert _fail(client).status_code == 429
            machine.shift(datetime.timedelta(seconds=1))
    assert len(events("auth.account_locked")) == 6


def test_a_success_from_another_ip_does_not_clear_the_lock(client, user):
    from django.test import Client

    with time_machine.travel(START, tick=False):
        _fail(client, times=5, address="203.0.113.66")
        response = Client().post(
            "/accounts/login/", {"username": "alice", "password": PASSWORD}, REMOTE_ADDR="192.0.2.10"
        )
        assert response.status_code == 302
        assert FailureCounter.objects.get(address="203.0.113.66").locked_until is not None
        assert _fail(client, address="203.0.113.66").status_code == 429


def test_distributed_failures_lock_the_account_everywhere(client, user, settings):
    settings.ACCOUNTS_LOCKOUT_ACCOUNT_FAILURE_LIMIT = 8
    with time_machine.travel(START, tick=False):
        for index in range(8):
            _fail(client, address=f"203.0.113.{index + 1}")
        response = client.post(
            "/accounts/login/", {"username": "alice", "password": PASSWORD}, REMOTE_ADDR="192.0.2.99"
        )
    assert response.status_code == 429
    assert [row["context"]["scope"] for row in events("auth.account_locked")] == ["account"]


def test_a_success_resets_the_counters_of_its_own_ip(client, user):
    _fail(client, times=4)
    client.post("/accounts/login/", {"username": "alice", "password": PASSWORD}, REMOTE_ADDR="198.51.100.1")
    assert set(FailureCounter.objects.values_list("failure_count", flat=True)) == {0}


def test_counters_are_forgotten_after_a_quiet_period(client, user):
    with time_machine.travel(START, tick=False) as machine:
        _fail(client, times=4)
        machine.shift(datetime.timedelta(days=1, seconds=1))
        _fail(client, times=4)
        assert FailureCounter.objects.get(address="198.51.100.1").failure_count == 4


def test_the_client_ip_comes_from_the_trusted_proxy_setting(client, user, settings):
    settings.AUDIT_TRUSTED_PROXY_COUNT = 1
    # The client forges a header entry; our proxy (REMOTE_ADDR) appended the real address.
    client.post(
        "/accounts/login/",
        {"username": "alice", "password": "wrong"},
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.77",
    )
    assert sorted(FailureCounter.objects.values_list("address", flat=True)) == ["", "198.51.100.77"]


@pytest.mark.audit_coverage("auth.account_unlocked")
def test_admin_unlock_command_clears_the_lock_and_is_recorded(client, user, capsys):
    with time_machine.travel(START, tick=False):
        _fail(client, times=5)
        call_command("unlock_account", " ALICE ")
        assert "1 active lock(s) cleared" in capsys.readouterr().out
        response = client.post(
            "/accounts/login/", {"username": "alice", "password": PASSWORD}, REMOTE_ADDR="198.51.100.1"
        )
    assert response.status_code == 302
    unlocked = events("auth.account_unlocked")[0]
    assert unlocked["subject_username"] == "alice" and unlocked["actor_username"] == ""


def test_limits_above_100_are_refused_by_a_system_check(settings):
    from accounts.checks import accounts_settings_check

    settings.ACCOUNTS_LOCKOUT_ACCOUNT_FAILURE_LIMIT = 101
    assert [error.id for error in accounts_settings_check(None)] == ["accounts.E001"]
    settings.ACCOUNTS_LOCKOUT_ACCOUNT_FAILURE_LIMIT = 100
    assert accounts_settings_check(None) == []


def test_reserve_refuses_without_touching_a_locked_counter(user):
    with time_machine.travel(START, tick=False):
        for attempt in range(5):
            reservation = lockout.password_attempt_reserve(username="alice", client_ip="192.0.2.1")
            assert reservation.refused_until is None
            assert reservation.reached == (("192.0.2.1",) if attempt == 4 else ())
            lockout.password_attempt_failed(username="alice", client_ip="192.0.2.1", reservation=reservation)
        before = list(FailureCounter.objects.order_by("address").values())
        refused = lockout.password_attempt_reserve(username="alice", client_ip="192.0.2.1")
        assert refused.refused_until == START + datetime.timedelta(minutes=1)
        assert list(FailureCounter.objects.order_by("address").values()) == before
