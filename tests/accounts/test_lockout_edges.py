"""Lockout and MFA throttling at their edges (accounts/services/lockout.py), through the services.

The login-page tests (test_lockout.py) show the lockout as a user meets it; these pin what they
leave open: which counter a refused attempt charges, when a refused client is told to come back,
what a success and a quiet period reset, and where each lock and delay ends, to the second.
"""

from __future__ import annotations

import datetime

import pytest
import time_machine
from django.db import transaction

from accounts.models import FailureCounter
from accounts.services import lockout
from tests.accounts.conftest import START

pytestmark = pytest.mark.django_db

SECOND = datetime.timedelta(seconds=1)
IP = "192.0.2.1"


def _reserve(ip=IP, username="alice"):
    return lockout.password_attempt_reserve(username=username, client_ip=ip)


def _fail(ip=IP, username="alice"):
    """One wrong password, counted and (at a limit) locked as the login service does it."""
    reservation = _reserve(ip, username)
    assert reservation.refused_until is None
    return lockout.password_attempt_failed(username=username, client_ip=ip, reservation=reservation)


def _counter(address, kind="password"):
    return FailureCounter.objects.get(kind=kind, username="alice", address=address)


def test_a_refused_attempt_from_a_locked_address_leaves_the_account_counter_alone():
    with time_machine.travel(START, tick=False) as machine:
        for _ in range(5):
            _fail()
        before = FailureCounter.objects.filter(address="").values().get()
        machine.shift(30 * SECOND)
        assert _reserve().refused_until == START + 60 * SECOND
    # Not even its time of last failure moves: refused attempts do not keep the account's count alive.
    assert FailureCounter.objects.filter(address="").values().get() == before


def test_while_the_account_is_locked_other_addresses_are_refused_and_not_charged(settings):
    settings.ACCOUNTS_LOCKOUT_ACCOUNT_FAILURE_LIMIT = 3
    with time_machine.travel(START, tick=False):
        _fail(ip="203.0.113.1")
        _fail(ip="203.0.113.1")
        _fail(ip="203.0.113.2")  # the account's third failure locks it
        for _ in range(3):
            assert _reserve(ip="198.51.100.9").refused_until == START + 60 * SECOND
            assert _reserve(ip="203.0.113.1").refused_until == START + 60 * SECOND
    # A new address is not charged, and one with failures keeps them (neither more nor wiped).
    assert _counter("198.51.100.9").failure_count == 0
    assert _counter("203.0.113.1").failure_count == 2
    assert _counter("").failure_count == 0 and _counter("").locked_until == START + 60 * SECOND


def test_an_attempt_while_the_last_one_is_in_flight_waits_for_the_first_cooloff():
    with time_machine.travel(START, tick=False) as machine:
        for _ in range(5):
            _fail()
        machine.shift(60 * SECOND)  # the first lock is over
        # Five attempts are admitted again (a lock restarts the count); the fifth reaches the
        # limit but its password is still being checked, so no lock is set yet.
        for attempt in range(5):
            reservation = _reserve()
            assert reservation.refused_until is None
            assert reservation.reached == ((IP,) if attempt == 4 else ())
        assert _reserve().refused_until == START + 120 * SECOND


def test_a_refused_client_is_told_when_the_last_of_its_locks_ends(settings):
    settings.ACCOUNTS_LOCKOUT_ACCOUNT_FAILURE_LIMIT = 10
    with time_machine.travel(START, tick=False) as machine:
        for _ in range(5):
            _fail()
        machine.shift(60 * SECOND)
        locks = [lock for _ in range(5) for lock in _fail()]
        now = START + 60 * SECOND
        # The address's second lock (5 min) and the account's first (1 min) are set together.
        assert {(lock.scope, lock.until, lock.failures) for lock in locks} == {
            ("address", now + 300 * SECOND, 5),
            ("account", now + 60 * SECOND, 10),
        }
        assert _reserve().refused_until == now + 300 * SECOND


def test_an_attempt_without_a_client_ip_is_counted_under_an_unknown_address():
    with time_machine.travel(START, tick=False):
        for _ in range(5):
            _fail(ip=None)
        assert _reserve(ip=None).refused_until == START + 60 * SECOND
        assert _reserve(ip=IP).refused_until is None
    assert _counter(lockout.UNKNOWN_ADDRESS).locked_until == START + 60 * SECOND


def test_a_success_restarts_the_cooloffs_from_the_first():
    with time_machine.travel(START, tick=False) as machine:
        for _ in range(5):
            _fail()
        machine.shift(60 * SECOND)
        lockout.password_attempt_succeeded(username="alice", client_ip=IP)
        locks = [lock for _ in range(5) for lock in _fail()]
    assert [(lock.scope, lock.until) for lock in locks] == [("address", START + 120 * SECOND)]


def test_a_failure_that_reaches_no_limit_costs_no_query(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert lockout.password_attempt_failed(username="alice", client_ip=IP, reservation=lockout.Reservation()) == []


# --- MFA ---------------------------------------------------------------------------------------


def _mfa_gate():
    return lockout.mfa_gate_open(username="alice")


def _mfa_fail():
    """One wrong code, checked when the gate is open."""
    with transaction.atomic():
        gate = _mfa_gate()
        assert gate.retry_at is None
        return gate.failed()


def test_the_mfa_delay_doubles_from_the_base_up_to_its_bound(settings):
    settings.ACCOUNTS_MFA_THROTTLE_BASE = 3
    settings.ACCOUNTS_MFA_THROTTLE_MAX = 20
    delays = [lockout.mfa_delay(count).total_seconds() for count in [0, 1, 2, 3, 4, 10**6]]
    assert delays == [0, 3, 6, 12, 20, 20]


def test_mfa_locks_grow_and_the_code_step_opens_at_the_exact_end_of_each(settings):
    settings.ACCOUNTS_MFA_FAILURE_LIMIT = 2
    with time_machine.travel(START, tick=False) as machine:
        for cooloff in [60, 300]:
            assert _mfa_fail() is None
            machine.shift(SECOND)  # the one-second delay after the first wrong code
            lock = _mfa_fail()
            now = datetime.datetime.now(tz=datetime.UTC)
            assert (lock.scope, lock.until, lock.failures) == ("account", now + cooloff * SECOND, 2)
            machine.shift((cooloff - 1) * SECOND)
            gate = _mfa_gate()
            assert gate.locked and gate.retry_at == lock.until
            machine.shift(SECOND)
            gate = _mfa_gate()
            assert not gate.locked and gate.retry_at is None


def test_a_quiet_period_forgets_wrong_codes_even_when_the_delay_is_longer(settings):
    settings.ACCOUNTS_LOCKOUT_COOLOFFS = [60]
    settings.ACCOUNTS_LOCKOUT_RESET_AFTER = 120
    settings.ACCOUNTS_MFA_THROTTLE_BASE = 100
    settings.ACCOUNTS_MFA_THROTTLE_MAX = 1000
    with time_machine.travel(START, tick=False) as machine:
        _mfa_fail()
        machine.shift(100 * SECOND)
        _mfa_fail()  # the delay is now 200 s, longer than the quiet period
        machine.shift(120 * SECOND)
        assert _mfa_gate().retry_at == START + 300 * SECOND
        machine.shift(SECOND)
        assert _mfa_gate().retry_at is None
        _mfa_fail()  # counted as the first wrong code again
        assert _mfa_gate().retry_at == START + 321 * SECOND
    assert _counter("", kind="mfa").failure_count == 1


def test_after_a_quiet_period_the_next_mfa_lock_is_the_first_cooloff_again(settings):
    settings.ACCOUNTS_MFA_FAILURE_LIMIT = 2
    with time_machine.travel(START, tick=False) as machine:
        _mfa_fail()
        machine.shift(SECOND)
        assert _mfa_fail().until == START + 61 * SECOND
        machine.shift(datetime.timedelta(days=1, seconds=1))
        _mfa_fail()
        machine.shift(SECOND)
        lock = _mfa_fail()
        assert lock.until == datetime.datetime.now(tz=datetime.UTC) + 60 * SECOND


def test_a_right_code_resets_the_delay_and_the_cooloffs(settings):
    settings.ACCOUNTS_MFA_FAILURE_LIMIT = 2
    with time_machine.travel(START, tick=False) as machine:
        _mfa_fail()
        machine.shift(SECOND)
        _mfa_fail()
        machine.shift(60 * SECOND)
        with transaction.atomic():
            _mfa_gate().succeeded()
        _mfa_fail()
        assert _mfa_gate().retry_at == START + 62 * SECOND  # the first wrong code's delay
        machine.shift(SECOND)
        assert _mfa_fail().until == START + 122 * SECOND  # the first cool-off
    assert FailureCounter.objects.filter(kind="mfa").count() == 1


def test_a_lowered_mfa_limit_applies_to_failures_already_counted(settings):
    settings.ACCOUNTS_MFA_FAILURE_LIMIT = 10
    with time_machine.travel(START, tick=False) as machine:
        for _ in range(4):
            assert _mfa_fail() is None
            machine.shift(10 * SECOND)
        settings.ACCOUNTS_MFA_FAILURE_LIMIT = 3
        lock = _mfa_fail()
    assert (lock.failures, lock.until) == (5, START + 100 * SECOND)


def test_a_wrong_code_in_the_last_second_of_the_quiet_period_still_adds_up(settings):
    settings.ACCOUNTS_LOCKOUT_COOLOFFS = [60]
    settings.ACCOUNTS_LOCKOUT_RESET_AFTER = 120
    with time_machine.travel(START, tick=False) as machine:
        _mfa_fail()
        machine.shift(120 * SECOND)  # the quiet period ends after this second
        _mfa_fail()
        assert _mfa_gate().retry_at == START + 122 * SECOND  # the second wrong code's delay
