"""Helpers for the test suites of every app (not used by the application itself).

The admin refuses any session that has not passed MFA, so a test that opens the console as a
staff user logs in with ``login_with_mfa`` instead of ``client.force_login``.
"""

from __future__ import annotations

import binascii

from django_otp import DEVICE_ID_SESSION_KEY

from accounts import totp
from accounts.models import TOTPDevice, TrackedSession
from accounts.services.sessions import TRACKED_SESSION_KEY


def login_with_mfa(client, user) -> TOTPDevice:
    """Log ``user`` into the Django test ``client`` as after the code step (MFA passed, step-up fresh).

    Gives the user a confirmed authenticator if they have none; returns it.
    """
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(
            user=user, name="Test authenticator", confirmed=True, key=binascii.hexlify(totp.new_key()).decode()
        )
    user.authentication_method = "password+totp"
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    TrackedSession.objects.filter(pk=session.get(TRACKED_SESSION_KEY)).update(mfa_verified=True)
    return device
