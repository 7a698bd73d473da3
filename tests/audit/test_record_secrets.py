"""No secret given to ``record()`` reaches the stored event."""

from __future__ import annotations

import json

import pytest

import audit
from audit.models import AuditEvent
from tests.core.test_sanitiser import ARGON2, FERNET, HEX_KEY, JWT, SECRET_KEYED, SECRET_VALUES

pytestmark = pytest.mark.django_db


def test_no_secret_reaches_a_stored_event(bound_request, user, undeclared_context_keys):
    event = audit.record(
        action=audit.Action.PASSWORD_CHANGED,
        actor=user,
        context={**SECRET_KEYED, "note": f"{JWT} {FERNET} {ARGON2} {HEX_KEY}"},
    )
    stored = AuditEvent.objects.get(uuid=event.uuid)
    fields = {field.name: str(getattr(stored, field.name)) for field in AuditEvent._meta.fields}
    stored_text = json.dumps(fields | {"context": stored.context})
    for secret in [*SECRET_VALUES, "k8s9d7f6g5h4j3k2l1", "YWxpY2U6aHVudGVyMg==", "door code"]:
        assert secret not in stored_text
