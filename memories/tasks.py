"""Celery tasks of the memories app: thin wrappers around services, safe to run twice."""

from __future__ import annotations

from celery import shared_task

from memories import services


@shared_task(name="memories.transfer_offers_expire", ignore_result=True)
def transfer_offers_expire() -> int:
    """Expire the transfer offers past their deadline (``memories.services.context_transfer_offers_expire``)."""
    return services.context_transfer_offers_expire()
