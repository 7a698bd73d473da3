"""Celery tasks of the audit app: thin, idempotent wrappers around the services.

Each is safe to run twice and to retry: sealing and archiving only act on what is still pending,
and publishing verifies from the last published head. They are scheduled in the project's one
beat schedule (``monitoring/schedule.py``); monitoring records each run and turns a failed one into
a ``system.scheduled_job_failed`` audit event, so the tasks only raise.
"""

from __future__ import annotations

from celery import shared_task


@shared_task(name="audit.tasks.audit_seal", ignore_result=True)
def audit_seal() -> dict:
    """Seal every committed unsealed event (``audit.services.audit_chain_seal``)."""
    from audit.services import audit_chain_seal

    result = audit_chain_seal()
    return {"sealed": result.sealed, "refused": len(result.refused_ids), "busy": result.busy}


@shared_task(name="audit.tasks.audit_publish_head", ignore_result=False)  # its verdict is read
def audit_publish_head() -> dict:
    """Verify from the last published head and publish the new one (``audit.services.audit_head_publish``)."""
    from audit.services import audit_head_publish

    report = audit_head_publish()
    return {"ok": report.ok, "last_sequence": report.last_sequence, "first_bad_sequence": report.first_bad_sequence}


@shared_task(name="audit.tasks.audit_archive")
def audit_archive() -> dict:
    """Archive, verify and purge events past retention (``audit.retention.services.audit_events_archive``)."""
    from audit.retention.services import ArchiveBusy, audit_events_archive

    try:
        result = audit_events_archive()
    except ArchiveBusy:
        return {"skipped": "another archiver is running"}
    return {"archived": result.archived, "purged": result.purged, "files": [file.path.name for file in result.files]}
