"""Celery tasks of the encryption app: thin wrappers around the services."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="encryption.encryption_keys_rotate")
def encryption_keys_rotate_task(*, actor_id: int | None = None, batch_size: int | None = None) -> dict:
    """Run ``encryption_keys_rotate`` in a worker; safe to run twice (rotation is idempotent)."""
    from django.contrib.auth import get_user_model

    from encryption.services import encryption_keys_rotate

    actor = get_user_model()._default_manager.filter(pk=actor_id).first() if actor_id is not None else None
    return encryption_keys_rotate(actor=actor, batch_size=batch_size).summary()


@shared_task(name="encryption.backup_and_verify")
def backup_and_verify(*, keep: int | None = None) -> dict:
    """The daily backup: create, verify, prune (``encryption.backups.backup_create_and_verify``).

    Each step records its own audit event; a failure raises, so monitoring records the job run as
    failed (and ``system.backup_failed`` is already in the audit trail). Running it twice makes
    two verified backups; retention keeps the newest ``ENCRYPTION_BACKUP_KEEP``.
    """
    from encryption.backups import backup_create_and_verify

    return backup_create_and_verify(keep=keep)
