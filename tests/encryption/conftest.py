"""Fixtures of the encryption tests."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from encryption.crypto import decryption_failed
from encryption.keyring import invalidate_key_cache


@pytest.fixture(autouse=True)
def _fresh_key_cache():
    """Every test resolves its keys afresh (settings changes also clear the cache)."""
    invalidate_key_cache()
    yield
    invalidate_key_cache()


@pytest.fixture
def legacy_key(settings) -> str:
    """A django-encrypted-model-fields key, configured the way that package reads it."""
    key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEY = [key]
    return key


@pytest.fixture
def decryption_failures():
    """The errors sent through ``decryption_failed`` while the test runs."""
    seen = []

    def receiver(sender, *, error, **kwargs):
        seen.append(error)

    decryption_failed.connect(receiver, dispatch_uid="tests.encryption.decryption_failures")
    yield seen
    decryption_failed.disconnect(dispatch_uid="tests.encryption.decryption_failures")


@pytest.fixture
def recorded_events(monkeypatch):
    """Audit events recorded by the encryption services (captured at their one seam)."""
    events = []

    def capture(*, action, outcome, actor=None, context=None):
        events.append({"action": action, "outcome": outcome, "actor": actor, "context": context or {}})

    monkeypatch.setattr("encryption.services._record_event", capture)
    return events
