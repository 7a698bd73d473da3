"""Celery tasks of the monitoring app."""

from celery import shared_task
from django.utils import timezone


@shared_task(name="monitoring.health_ping")
def health_ping(token: str) -> dict:
    """Answer a ping through the worker: proves a worker consumes the broker and runs Django code."""
    return {"token": token, "answered_at": timezone.now().isoformat()}
