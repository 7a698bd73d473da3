"""MFA services: enrollment, several devices, expiry, removal, backup codes, throttling and lockout of codes."""

from __future__ import annotations

import datetime
import math
import re

import pytest
import time_machine
from django.core import mail

from accounts import selectors, totp
from accounts.models import BackupCode, FailureCounter, TOTPDevice
from accounts.services import mfa
from tests.accounts.conftest import START, Authenticator, actions, audit_dump, enroll, events


@pytest.mark.django_db
def test_enrollment_confirms_only_with_a_valid_code_and_issues_ten_backup_codes(
    user, django_capture_on_commit_callbacks
):
    with time_machine.travel(START, tick=False):
        device = mfa.totp_device_create(actor=user, user=user, name="Phone")
        assert not device.confirmed and device.expires_at == START + datetime.timedelta(minutes=15)
        app = Authenticator(totp.key_to_base32(device.bin_key))
        with pytest.raises(mfa.MfaError, match="not right"):
            mfa.totp_device_confirm(actor=user, device=device, code="000000" if app.now() != "000000" else "111111")
        with pytest.raises(mfa.MfaError, match="6-digit"):
            mfa.totp_device_confirm(actor=user, device=device, code="abc")
        device.refresh_from_db()
        assert not device.confirmed
        with django_capture_on_commit_callbacks(execute=True):
            codes = mfa.totp_device_confirm(actor=user, device=device, code=app.now())
    device.refresh_from_db()
    assert device.confirmed and device.expires_at is None
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(re.fullmatch(r"[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}", code) for code in codes)
    assert actions() == [
        "auth.mfa_device_added",
        "auth.mfa_verify_failed",
        "auth.mfa_verify_failed",
        "auth.mfa_device_confirmed",
        "auth.backup_codes_generated",
        "auth.security_notification_sent",
    ]
    assert [message.subject for message in mail.outbox] == ["An authenticator was added to your account"]
    assert selectors.mfa_enabled(user)


def test_backup_codes_carry_at_least_50_bits_of_entropy():
    assert totp.BACKUP_CODE_LENGTH * math.log2(len(set(totp.BACKUP_CODE_ALPHABET))) >= 50


@pytest.mark.django_db
def test_backup_codes_are_stored_hashed_single_use_and_notify(user, enrolled, django_capture_on_commit_callbacks):
    _app, codes = enrolled
    stored = list(BackupCode.objects.values_list("digest", "salt"))
    assert len(stored) == 10
    dump = audit_dump() + repr(stored)
    for code in codes:
        assert code not in dump and code.replace("-", "") not in dump
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        result = mfa.mfa_verify(user=user, code=codes[0].lower().replace("-", " "), purpose="login")
    assert result.accepted and result.method == "backup_code" and result.remaining_backup_codes == 9
    assert mail.outbox[0].subject == "A backup code was used to sign in"
    assert "9 unused backup code" in mail.outbox[0].body
    assert mfa.mfa_verify(user=user, code=codes[0], purpose="login").outcome is mfa.Outcome.REJECTED
    used = events("auth.backup_code_used")
    assert len(used) == 1 and used[0]["context"]["remaining"] == 9


@pytest.mark.django_db
def test_regenerating_backup_codes_invalidates_the_old_set(user, enrolled):
    _app, old = enrolled
    new = mfa.backup_codes_generate(actor=user, user=user)
    assert set(new).isdisjoint(old)
    assert mfa.mfa_verify(user=user, code=old[1], purpose="login").outcome is mfa.Outcome.REJECTED
    with time_machine.travel(datetime.datetime.now(tz=datetime.UTC) + datetime.timedelta(seconds=5)):
        assert mfa.mfa_verify(user=user, code=new[1], purpose="login").accepted
    assert events("auth.backup_codes_generated")[-1]["context"] == {"count": 10, "replaced_unused": 10}


@pytest.mark.django_db
def test_several_named_devices_each_work(user):
    with time_machine.travel(START, tick=False):
        phone, _ = enroll(user)
        device = mfa.totp_device_create(actor=user, user=user, name="Tablet")
        tablet = Authenticator(totp.key_to_base32(device.bin_key))
        assert mfa.totp_device_confirm(actor=user, device=device, code=tablet.now()) is None  # codes exist already
    assert list(TOTPDevice.objects.filter(user=user, confirmed=True).values_list("name", flat=True)) == [
        "Phone",
        "Tablet",
    ]
    with time_machine.travel(START + datetime.timedelta(seconds=30), tick=False):
        assert mfa.mfa_verify(user=user, code=tablet.now(), purpose="login").device.name == "Tablet"
    with time_machine.travel(START + datetime.timedelta(seconds=60), tick=False):
        assert mfa.mfa_verify(user=user, code=phone.now(), purpose="login").device.name == "Phone"


@pytest.mark.django_db
def test_unconfirmed_devices_expire(user):
    with time_machine.travel(START, tick=False):
        device = mfa.totp_device_create(actor=user, user=user, name="Phone")
        app = Authenticator(totp.key_to_base32(device.bin_key))
    with time_machine.travel(START + datetime.timedelta(minutes=16), tick=False):
        with pytest.raises(mfa.MfaError, match="expired"):
            mfa.totp_device_confirm(actor=user, device=device, code=app.now())
        assert mfa.totp_device_pending(user=user) is None
        assert mfa.totp_devices_expire() == 1
    assert not TOTPDevice.objects.exists()


@pytest.mark.django_db
def test_staff_cannot_remove_their_last_device_but_others_can(user, staff_user):
    enroll(staff_user)
    device = TOTPDevice.objects.get(user=staff_user)
    with pytest.raises(mfa.MfaError, match="required"):
        mfa.totp_device_remove(actor=staff_user, device=device)
    enroll(user)
    mfa.totp_device_remove(actor=user, device=TOTPDevice.objects.get(user=user))
    assert not selectors.mfa_enabled(user)
    assert not BackupCode.objects.filter(device__user=user).exists()
    removed = events("auth.mfa_device_removed")[-1]
    assert removed["context"]["backup_set_discarded"] is True


@pytest.mark.django_db
def test_wrong_codes_are_throttled_with_a_growing_bounded_delay(user, settings):
    settings.ACCOUNTS_MFA_FAILURE_LIMIT = 100
    with time_machine.travel(START, tick=False) as machine:
        app, _ = enroll(user)
        waits = []
        for _ in range(12):
            wrong = "000000" if app.now() != "000000" else "111111"
            result = mfa.mfa_verify(user=user, code=wrong, purpose="login")
            assert result.outcome is mfa.Outcome.REJECTED
            waits.append((result.retry_at - datetime.datetime.now(tz=datetime.UTC)).total_seconds())
            # Too soon: refused without checking, with the time of the next try.
            early = mfa.mfa_verify(user=user, code=app.now(), purpose="login")
            assert early.outcome is mfa.Outcome.THROTTLED and early.retry_at == result.retry_at
            machine.shift(datetime.timedelta(seconds=waits[-1]))
        assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]
        machine.shift(datetime.timedelta(seconds=31))
        assert mfa.mfa_verify(user=user, code=app.now(), purpose="login").accepted
    assert FailureCounter.objects.get(kind="mfa").failure_count == 0


@pytest.mark.django_db
def test_too_many_wrong_codes_lock_the_code_step_and_email_the_user(user, settings, django_capture_on_commit_callbacks):
    settings.ACCOUNTS_MFA_FAILURE_LIMIT = 3
    with time_machine.travel(START, tick=False) as machine:
        app, _ = enroll(user)
        mail.outbox.clear()
        with django_capture_on_commit_callbacks(execute=True):
            for _ in range(3):
                result = mfa.mfa_verify(user=user, code="12345x", purpose="login")
                machine.shift(datetime.timedelta(seconds=10))
        assert result.outcome is mfa.Outcome.LOCKED
        assert mfa.mfa_verify(user=user, code=app.now(), purpose="login").outcome is mfa.Outcome.LOCKED
        machine.shift(datetime.timedelta(seconds=61))
        assert mfa.mfa_verify(user=user, code=app.now(), purpose="login").accepted
    locked = events("auth.account_locked")
    assert len(locked) == 1 and locked[0]["context"]["kind"] == "mfa"
    assert [message.subject for message in mail.outbox] == ["Your account was locked after failed sign-in attempts"]


@pytest.mark.django_db
@pytest.mark.parametrize("bad", ["", "12345", "1234567", "abcdef", "1" * 33, "12345\x00", "１２３４５６"])
def test_malformed_codes_are_refused_recorded_and_counted(user, bad):
    with time_machine.travel(START, tick=False):
        enroll(user)
        result = mfa.mfa_verify(user=user, code=bad, purpose="login")
    assert result.outcome is mfa.Outcome.MALFORMED
    failed = events("auth.mfa_verify_failed")[-1]
    assert failed["context"]["reason"] == "malformed" and failed["outcome"] == "failure"
    assert FailureCounter.objects.get(kind="mfa").failure_count == 1
