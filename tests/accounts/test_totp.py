"""TOTP against RFC 6238 Appendix B and an independent implementation (pyotp); drift; replay; encryption."""

from __future__ import annotations

import base64
import datetime

import pyotp
import pytest
import time_machine
from django.db import connection

from accounts import totp
from accounts.models import TOTPDevice
from accounts.services import mfa
from tests.accounts.conftest import START, Authenticator, actions, enroll

RFC_KEY = b"12345678901234567890"
# RFC 6238 Appendix B, SHA-1 column: (Unix time, 8-digit TOTP).
RFC6238_SHA1_VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]


@pytest.mark.parametrize(("unix_time", "expected"), RFC6238_SHA1_VECTORS)
def test_rfc6238_appendix_b_sha1_vectors(unix_time, expected):
    step = totp.time_step(unix_time)
    assert totp.code_at_step(RFC_KEY, step, digits=8) == expected
    assert totp.matching_step(RFC_KEY, expected, at=unix_time, digits=8) == step
    # The same vectors from pyotp, an independent implementation.
    assert pyotp.TOTP(base64.b32encode(RFC_KEY).decode(), digits=8).at(unix_time) == expected


def test_our_codes_match_pyotp_over_a_day_of_steps():
    key = totp.new_key()
    reference = pyotp.TOTP(totp.key_to_base32(key))
    for unix_time in range(1_700_000_000, 1_700_086_400, 997):
        assert totp.code_at_step(key, totp.time_step(unix_time)) == reference.at(unix_time)


@pytest.mark.parametrize(("offset_steps", "accepted"), [(-2, False), (-1, True), (0, True), (1, True), (2, False)])
def test_at_most_one_step_of_drift_either_way(offset_steps, accepted):
    key = totp.new_key()
    now = 1_800_000_015
    code = pyotp.TOTP(totp.key_to_base32(key)).at(now + 30 * offset_steps)
    assert (totp.matching_step(key, code, at=now) is not None) is accepted


@pytest.mark.parametrize("bad", ["", "12345", "1234567", "12a456", "１２３４５６", " 123456", "123456" * 100])
def test_malformed_codes_never_match(bad):
    assert totp.matching_step(totp.new_key(), bad, at=1_800_000_000) is None


@pytest.mark.django_db
def test_the_secret_is_encrypted_at_rest(user):
    device = mfa.totp_device_create(actor=user, user=user, name="Phone")
    with connection.cursor() as cursor:
        cursor.execute("SELECT key FROM accounts_totpdevice WHERE id = %s", [device.pk])
        stored = cursor.fetchone()[0]
    assert device.key not in stored
    assert totp.key_to_base32(device.bin_key) not in stored
    assert stored.startswith("nv1")
    assert TOTPDevice.objects.get(pk=device.pk).key == device.key


@pytest.mark.django_db
def test_a_code_is_accepted_once_and_its_replay_is_rejected_and_recorded(user):
    with time_machine.travel(START, tick=False):
        app, _codes = enroll(user)
        # The enrollment code was spent: the same step cannot log in.
        result = mfa.mfa_verify(user=user, code=app.now(), purpose="login")
        assert result.outcome is mfa.Outcome.REPLAYED
    with time_machine.travel(START + datetime.timedelta(seconds=30), tick=False):
        code = app.now()
        assert mfa.mfa_verify(user=user, code=code, purpose="login").accepted
    with time_machine.travel(START + datetime.timedelta(seconds=95), tick=False):
        # Throttle after the replay above has long passed; the code of step +1 is now an old code.
        replay = mfa.mfa_verify(user=user, code=code, purpose="login")
        assert replay.outcome in {mfa.Outcome.REPLAYED, mfa.Outcome.REJECTED}
    assert actions().count("auth.mfa_code_replayed") >= 1


@pytest.mark.django_db
def test_an_older_code_within_the_window_is_refused_after_a_newer_one(user):
    with time_machine.travel(START, tick=False):
        app, _ = enroll(user)
    later = START + datetime.timedelta(seconds=60)
    with time_machine.travel(later, tick=False):
        assert mfa.mfa_verify(user=user, code=app.at(later), purpose="login").accepted
        previous = app.at(later - datetime.timedelta(seconds=30))
    with time_machine.travel(later + datetime.timedelta(seconds=5), tick=False):
        assert mfa.mfa_verify(user=user, code=previous, purpose="login").outcome is mfa.Outcome.REPLAYED


@pytest.mark.django_db
def test_django_otp_device_api_also_refuses_replays(user):
    with time_machine.travel(START, tick=False):
        device = mfa.totp_device_create(actor=user, user=user, name="Phone")
        app = Authenticator(totp.key_to_base32(device.bin_key))
        mfa.totp_device_confirm(actor=user, device=device, code=app.now())
    with time_machine.travel(START + datetime.timedelta(seconds=31), tick=False):
        device.refresh_from_db()
        assert device.verify_token(app.now())
        assert not device.verify_token(app.now())
