"""Signal receivers of the encryption operations layer (connected in ``EncryptionConfig.ready``).

The crypto core raises a typed error and sends ``decryption_failed``; it imports nothing of ours,
so the audit event is recorded here, one layer up.
"""

from __future__ import annotations

import logging

from django.db import transaction

from encryption.errors import DecryptionError

logger = logging.getLogger(__name__)


def record_decryption_failure(sender, *, error: DecryptionError, **kwargs) -> None:
    """Record a ``DECRYPTION_FAILED`` audit event: where, which key id, why; never the value.

    The event is written in a savepoint of the caller's transaction, so that a failure to record
    it cannot poison that transaction: the caller is about to receive the ``DecryptionError``
    and must be able to handle it. (If the caller then rolls its transaction back, the event goes
    with it; reads normally run in autocommit, where it stays.)
    """
    from audit.actions import Action, Outcome
    from encryption.services import _record_event

    try:
        with transaction.atomic():
            _record_event(
                action=Action.DECRYPTION_FAILED,
                outcome=Outcome.FAILURE,
                context={"field": error.context or "", "key_id": error.key_id or "", "reason": error.reason},
            )
    except Exception:
        logger.exception("Could not record the audit event of a decryption failure (%s)", error.context)
