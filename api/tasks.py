"""Celery tasks of the API layer: thin wrappers named after the service they call."""

from __future__ import annotations

from celery import shared_task

from api import services


@shared_task(name="api.request_nonces_purge")
def api_request_nonces_purge() -> int:
    """Delete signed-request nonces past twice the signature window (idempotent)."""
    return services.request_nonces_purge()


@shared_task(name="api.deprecated_calls_flush")
def api_deprecated_calls_flush() -> int:
    """Add the deprecated-call counts pending in Redis to their rows (idempotent per batch)."""
    return services.deprecated_calls_flush()
