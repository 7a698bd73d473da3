"""The start of a long-running process, recorded with its runtime posture.

Each web, worker and beat process records ``system.process_started`` once, with what
``core.posture`` reads (uid, root filesystem, capabilities, no_new_privs, container, revision) and
its role; the ``process_posture`` detector raises an alert when the posture is weaker than it
should be. The entry points (``config/wsgi.py``; Celery's ``worker_ready`` and ``beat_init`` in
``monitoring.receivers``) call ``process_started_record_once``; management commands do not: they
are not long-running processes.
"""

from __future__ import annotations

import logging
import os

from django.db import connections, transaction

import audit
from audit.actions import Action
from audit.models import AuditEvent
from audit.services import Target
from core.posture import Posture, read_posture

logger = logging.getLogger("monitoring.posture")

ROLES = ("web", "worker", "beat")
# (pid, role) pairs this interpreter has recorded: a process forked after recording records again
# under its own pid, the same process never twice.
_recorded: set[tuple[int, str]] = set()


def process_started_record(*, role: str, posture: Posture | None = None) -> AuditEvent:
    """Record ``system.process_started`` for this process (or ``posture``) in one transaction.

    The actor is the system. The context is the posture's fields and the role; no environment
    variable other than ``IMAGE_REVISION`` is read, so no secret can reach it. ``role`` must be one
    of ``ROLES`` (``ValueError`` otherwise, nothing recorded).
    """
    if role not in ROLES:
        raise ValueError(f"process role must be one of {', '.join(ROLES)}, not {role!r}")
    posture = posture or read_posture()
    with transaction.atomic():
        return audit.record(
            action=Action.PROCESS_STARTED,
            target=Target(
                type="system.process",
                id=f"{posture.host}:{posture.pid}",
                repr=f"{role} process {posture.pid} on {posture.host}",
            ),
            context={"role": role, **posture.as_dict()},
        )


def process_started_record_once(*, role: str) -> bool:
    """Record this process's start once per process and role; True when this call recorded it.

    For the entry points: it never raises (a failure is logged with its class only, and the
    process starts all the same; readiness reports a database that is down) and closes the
    database connections it opened, so a process that forks afterwards (gunicorn's ``preload_app``,
    Celery's pool) hands no open connection to its children.
    """
    key = (os.getpid(), role)
    if key in _recorded:
        return False
    _recorded.add(key)
    try:
        process_started_record(role=role)
        return True
    except Exception as error:
        logger.warning("could not record the start of this %s process (%s)", role, type(error).__name__)
        return False
    finally:
        for connection in connections.all(initialized_only=True):
            if not connection.in_atomic_block:
                connection.close()
