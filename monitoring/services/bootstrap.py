"""A quiet bootstrap: what setting up an install causes is raised already resolved, with the reason.

``manage.py ensure_admin`` (the first administrator: staff and superuser granted by the system)
and ``manage.py load_demo_data`` (owners and admins of the demo organizations and teams) grant
privileges, which the ``privilege_escalation`` detector rightly alerts on. On a fresh install
those are no incident, and a newcomer's first console page should not be a wall of them.

Each of those commands records ``system.bootstrap_started`` (context ``command``) before its work,
in the same command run (one ``cmd-`` request id). A finding whose every evidence event
* carries that run's request id,
* has no client IP (it came from a command on the host, not from a request),
* was recorded after the marker and within ``MONITORING_BOOTSTRAP_WINDOW_SECONDS`` of it
is still raised, so the record shows it, but already **resolved**, with a note naming the
command, and without notifications. Nothing a request does can pass the test: a web request always
has a client IP, and events of the run recorded later than the window count as any other.
"""

from __future__ import annotations

from audit.actions import Action, Outcome
from audit.models import AuditEvent
from monitoring import conf
from monitoring.detectors.base import Finding

COMMAND_REASONS = {
    "ensure_admin": "the first administrator of a fresh install, created by manage.py ensure_admin",
    "load_demo_data": "demo data loaded by manage.py load_demo_data (make demo)",
}
COMMAND_PREFIX = "cmd-"


def bootstrap_reason(*, finding: Finding) -> str | None:
    """Why ``finding`` belongs to a bootstrap run (a sentence), or ``None`` when it does not.

    Permission: none (a read of the audit record by the alert service).
    """
    ids = set(finding.resolved_event_ids())
    if finding.last_event_id is not None:
        ids.add(finding.last_event_id)
    if not ids:
        return None
    events = list(AuditEvent.objects.filter(pk__in=ids).values("id", "request_id", "client_ip", "timestamp"))
    if len(events) != len(ids):
        return None
    run_ids = {event["request_id"] for event in events}
    if len(run_ids) != 1:
        return None
    run_id = run_ids.pop()
    if not run_id or not run_id.startswith(COMMAND_PREFIX) or any(event["client_ip"] for event in events):
        return None
    marker = (
        AuditEvent.objects.filter(action=Action.BOOTSTRAP_STARTED.value, request_id=run_id, outcome=Outcome.SUCCESS)
        .order_by("id")
        .values("id", "timestamp", "context")
        .first()
    )
    if marker is None or marker["id"] >= min(ids):
        return None
    window_end = marker["timestamp"] + conf.seconds("MONITORING_BOOTSTRAP_WINDOW_SECONDS")
    if max(event["timestamp"] for event in events) > window_end:
        return None
    context = marker["context"] if isinstance(marker["context"], dict) else {}
    command = str(context.get("command") or "")
    return COMMAND_REASONS.get(command, f"set-up command {command or 'unknown'}")


def bootstrap_note(reason: str) -> str:
    """The history note of an alert raised already resolved."""
    return f"Raised already resolved: caused by {reason}, not an incident."
