"""The two shared parts of an outbox: claiming the due rows, and the backoff between retries.

An outbox row (monitoring's ``Notification``, accounts' ``SecurityEmail``) is written in the
transaction of what it announces and delivered afterwards by a task. Both have ``status``
(``pending`` → ``sending`` → ``sent``), ``next_attempt_at`` and ``claimed_at``
(docs/decisions/notifications-outbox.md).
"""

from __future__ import annotations

import datetime

from django.db import connection, transaction
from django.db.models import Model, Q

PENDING, SENDING = "pending", "sending"


def claim_due(model: type[Model], *, now: datetime.datetime, limit: int, claim_timeout: datetime.timedelta) -> list:
    """Claim up to ``limit`` rows due now: pending ones whose time has come, and rows a worker
    claimed longer than ``claim_timeout`` ago and never finished (delivery is at-least-once).

    Concurrent workers claim different rows (``SKIP LOCKED`` where the database has it).
    """
    with transaction.atomic():
        due = model.objects.filter(
            Q(status=PENDING, next_attempt_at__lte=now) | Q(status=SENDING, claimed_at__lt=now - claim_timeout)
        ).order_by("next_attempt_at", "id")
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        batch = list(due[:limit])
        model.objects.filter(pk__in=[row.pk for row in batch]).update(status=SENDING, claimed_at=now)
    return batch


def retry_backoff(attempts: int, *, base: float, cap: float) -> datetime.timedelta:
    """Delay before retry number ``attempts`` (1, 2, ...): ``base`` x 2^(attempts-1), at most ``cap`` (seconds)."""
    return datetime.timedelta(seconds=min(base * (2 ** max(attempts - 1, 0)), cap))
