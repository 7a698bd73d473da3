"""Every action the project records, in one list, and the outcomes an action can have.

This module defines enums only, so it can be imported before the app registry is ready
(``audit/__init__.py`` exposes ``Action`` and ``Outcome`` lazily, but importing them here never
touches a model). Values are ``<area>.<what_happened>``: stable strings that go into the chain's
canonical form, the log and the archives, so **never rename or reuse a value** once events carry
it; add a new member instead.
"""

from __future__ import annotations

from django.db import models


class Action(models.TextChoices):
    """What happened. One enum for the whole project so the set of audited actions is one list."""

    # --- Authentication (OWASP ASVS 4.0.3 V7.1.3: log every authentication decision) ---------
    LOGIN_SUCCEEDED = "auth.login_succeeded", "Login succeeded"
    # ``subject`` carries the attempted username, normalised, when no account matched.
    LOGIN_FAILED = "auth.login_failed", "Login failed"
    LOGOUT = "auth.logout", "Logout"
    REAUTHENTICATED = "auth.reauthenticated", "Re-authenticated before a sensitive change"
    PASSWORD_CHANGED = "auth.password_changed", "Password changed"
    PASSWORD_RESET_REQUESTED = "auth.password_reset_requested", "Password reset requested"
    PASSWORD_RESET_COMPLETED = "auth.password_reset_completed", "Password reset completed"
    MFA_DEVICE_ADDED = "auth.mfa_device_added", "MFA device added"
    MFA_DEVICE_CONFIRMED = "auth.mfa_device_confirmed", "MFA device confirmed"
    MFA_DEVICE_REMOVED = "auth.mfa_device_removed", "MFA device removed"
    MFA_VERIFY_SUCCEEDED = "auth.mfa_verify_succeeded", "MFA verification succeeded"
    MFA_VERIFY_FAILED = "auth.mfa_verify_failed", "MFA verification failed"
    # RFC 6238 §5.2: a code once accepted is never accepted again; ASVS 2.8: reuse is logged.
    MFA_CODE_REPLAYED = "auth.mfa_code_replayed", "MFA code replayed"
    BACKUP_CODES_GENERATED = "auth.backup_codes_generated", "Backup codes generated"
    BACKUP_CODE_USED = "auth.backup_code_used", "Backup code used"
    ACCOUNT_LOCKED = "auth.account_locked", "Account locked"
    ACCOUNT_UNLOCKED = "auth.account_unlocked", "Account unlocked"
    SESSION_CREATED = "auth.session_created", "Session created"
    SESSION_REVOKED = "auth.session_revoked", "Session revoked"
    SESSION_REVOKED_ALL = "auth.session_revoked_all", "All sessions revoked"
    SESSION_EXPIRED = "auth.session_expired", "Session expired"
    EMAIL_VERIFICATION_SENT = "auth.email_verification_sent", "Email verification sent"
    EMAIL_VERIFIED = "auth.email_verified", "Email verified"
    EMAIL_CHANGED = "auth.email_changed", "Email changed"
    SIGNUP = "auth.signup", "Signed up"
    ACCOUNT_DEACTIVATED = "auth.account_deactivated", "Account deactivated"
    ACCOUNT_REACTIVATED = "auth.account_reactivated", "Account reactivated"
    ACCOUNT_DELETED = "auth.account_deleted", "Account deleted"
    SECURITY_NOTIFICATION_SENT = "auth.security_notification_sent", "Security notification sent"
    # Sign-up or password reset over its per-IP or per-address limit (ASVS 4.0.3 V2.2.1).
    EMAIL_RATE_LIMITED = "auth.email_rate_limited", "Sign-up or password-reset request rate limited"

    # --- API security ----------------------------------------------------------------------
    API_KEY_ISSUED = "api.key_issued", "API key issued"
    API_KEY_ROTATED = "api.key_rotated", "API key rotated"
    API_KEY_REVOKED = "api.key_revoked", "API key revoked"
    API_KEY_USED = "api.key_used", "API key used"
    API_KEY_REFUSED = "api.key_refused", "API key refused"
    REQUEST_SIGNATURE_FAILED = "api.request_signature_failed", "Request signature failed"
    DEPRECATED_ENDPOINT_CALLED = "api.deprecated_endpoint_called", "Deprecated endpoint called"
    RATE_LIMITED = "api.rate_limited", "Request rate limited"
    REQUEST_REJECTED = "api.request_rejected", "Request rejected (size or content type)"

    # --- Authorization (ASVS V7.2.2: log failed access decisions) ---------------------------
    PERMISSION_DENIED = "authz.permission_denied", "Permission denied"
    STAFF_GRANTED = "authz.staff_granted", "Staff status granted"
    STAFF_REVOKED = "authz.staff_revoked", "Staff status revoked"
    SUPERUSER_GRANTED = "authz.superuser_granted", "Superuser status granted"
    SUPERUSER_REVOKED = "authz.superuser_revoked", "Superuser status revoked"
    GROUP_MEMBERSHIP_CHANGED = "authz.group_membership_changed", "Group membership changed"
    USER_PERMISSIONS_CHANGED = "authz.user_permissions_changed", "User permissions changed"
    GROUP_PERMISSIONS_CHANGED = "authz.group_permissions_changed", "Group permissions changed"
    # Team and organization roles are recorded as membership.added / role_set / removed (below),
    # with the role before and after; ``authz.role_changed`` was a second name for the same
    # change that nothing recorded (issue #15, provable coverage) and is gone.

    # --- Memories and contexts (ASVS V8.3.5: audit access to sensitive data) ------------------
    MEMORY_READ = "memory.read", "Memory read"
    MEMORY_LIST = "memory.list", "Memories listed"
    MEMORY_CREATED = "memory.created", "Memory created"
    MEMORY_UPDATED = "memory.updated", "Memory updated"
    MEMORY_DELETED = "memory.deleted", "Memory deleted"
    # Memories are shared, transferred and exported with their context (context.shared,
    # context.transferred, context.exported): a memory never moves on its own (memory_update).
    # memory.shared/unshared/transferred/exported named operations that do not exist and were
    # never recorded (issue #15, provable coverage), so they are gone; never reuse the values.
    CONTEXT_READ = "context.read", "Context read"
    CONTEXT_LIST = "context.list", "Contexts listed"
    CONTEXT_CREATED = "context.created", "Context created"
    CONTEXT_UPDATED = "context.updated", "Context updated"
    CONTEXT_DELETED = "context.deleted", "Context deleted"
    CONTEXT_SHARED = "context.shared", "Context shared"
    CONTEXT_UNSHARED = "context.unshared", "Context unshared"
    CONTEXT_TRANSFERRED = "context.transferred", "Context transferred"
    CONTEXT_TRANSFER_OFFERED = "context.transfer_offered", "Context transfer offered"
    CONTEXT_TRANSFER_WITHDRAWN = "context.transfer_withdrawn", "Context transfer offer withdrawn"
    CONTEXT_TRANSFER_DECLINED = "context.transfer_declined", "Context transfer offer declined"
    CONTEXT_TRANSFER_ACCEPTED = "context.transfer_accepted", "Context transfer offer accepted"
    CONTEXT_TRANSFER_EXPIRED = "context.transfer_expired", "Context transfer offer expired"
    CONTEXT_EXPORTED = "context.exported", "Context exported"
    MEMBERSHIP_ADDED = "membership.added", "Member added"
    MEMBERSHIP_REMOVED = "membership.removed", "Member removed"
    MEMBERSHIP_ROLE_SET = "membership.role_set", "Member role set"

    # --- The admin console (from Django's admin log) -----------------------------------------
    ADMIN_ADDED = "admin.added", "Admin: object added"
    ADMIN_CHANGED = "admin.changed", "Admin: object changed"
    ADMIN_DELETED = "admin.deleted", "Admin: object deleted"

    # --- System ---------------------------------------------------------------------------
    MIGRATION_APPLIED = "system.migration_applied", "Migration applied"
    AUDIT_VERIFIED = "system.audit_verified", "Audit chain verified"
    AUDIT_ARCHIVED = "system.audit_archived", "Audit events archived"
    AUDIT_PURGED = "system.audit_purged", "Audit events purged"
    AUDIT_HEAD_PUBLISHED = "system.audit_head_published", "Audit chain head published"
    KEY_ROTATION_STARTED = "system.key_rotation_started", "Key rotation started"
    KEY_ROTATION_FINISHED = "system.key_rotation_finished", "Key rotation finished"
    KEY_ROTATION_FAILED = "system.key_rotation_failed", "Key rotation failed"
    DECRYPTION_FAILED = "system.decryption_failed", "Decryption failed"
    BACKUP_CREATED = "system.backup_created", "Backup created"
    BACKUP_VERIFIED = "system.backup_verified", "Backup verified"
    BACKUP_FAILED = "system.backup_failed", "Backup failed"
    BACKUP_RESTORED = "system.backup_restored", "Backup restored"
    KEY_RETIRED = "system.key_retired", "Encryption key retired"
    AUDIT_RECONCILED = "system.audit_reconciled", "Audit chain reconciled after a restore"
    # The sealer stepped over numbers held by rows it did not allocate, or numbers already
    # published before the newest events were removed (audit/sealing.py); both raise an alert.
    AUDIT_FORGED_ROW_SKIPPED = "system.audit_forged_row_skipped", "Forged audit row skipped by the sealer"
    AUDIT_SEQUENCE_JUMPED = "system.audit_sequence_jumped", "Audit sealing continued after a truncated tail"
    PLAINTEXT_ENCRYPTED = "system.plaintext_encrypted", "Plaintext values encrypted in place"
    SCHEDULED_JOB_FAILED = "system.scheduled_job_failed", "Scheduled job failed"
    PROCESS_STARTED = "system.process_started", "Process started"
    BOOTSTRAP_STARTED = "system.bootstrap_started", "Bootstrap started (first administrator, demo data)"
    # A release switched in (deploy) or back (rollback): both revisions, recorded by the deploy
    # tool through ``manage.py record_deployment`` (docs/operations.md "Deployments").
    DEPLOYED = "system.deployed", "Release deployed"
    ROLLED_BACK = "system.rolled_back", "Release rolled back"

    # --- Reading the trail itself (ASVS V8.3.5 for the record of who looked at what) ----------
    AUDIT_SEARCHED = "audit.searched", "Audit trail searched"
    AUDIT_EXPORTED = "audit.exported", "Audit trail exported"

    # --- Monitoring -------------------------------------------------------------------------
    ALERT_RAISED = "monitoring.alert_raised", "Alert raised"
    ALERT_ACKNOWLEDGED = "monitoring.alert_acknowledged", "Alert acknowledged"
    ALERT_RESOLVED = "monitoring.alert_resolved", "Alert resolved"
    ALERT_DISMISSED = "monitoring.alert_dismissed", "Alert dismissed"
    ALERT_ASSIGNED = "monitoring.alert_assigned", "Alert assigned"
    SUPPRESSION_CREATED = "monitoring.suppression_created", "Alert suppression rule created"
    SUPPRESSION_ENDED = "monitoring.suppression_ended", "Alert suppression rule ended"
    SUPPRESSION_DELETED = "monitoring.suppression_deleted", "Alert suppression rule deleted"


class Outcome(models.TextChoices):
    """How it ended."""

    SUCCESS = "success", "Success"
    FAILURE = "failure", "Failure"  # the attempt was made and failed (wrong password, bad code)
    DENIED = "denied", "Denied"  # refused by a policy (permission, lockout, rate limit)
    ERROR = "error", "Error"  # the system failed (exception, unavailable dependency)


# Groups used by the incident selectors and the admin. Frozensets of values (plain strings).
LOGIN_FAILURE_ACTIONS = frozenset({Action.LOGIN_FAILED.value, Action.MFA_VERIFY_FAILED.value})
PRIVILEGE_ACTIONS = frozenset(
    {
        Action.STAFF_GRANTED.value,
        Action.STAFF_REVOKED.value,
        Action.SUPERUSER_GRANTED.value,
        Action.SUPERUSER_REVOKED.value,
        Action.GROUP_MEMBERSHIP_CHANGED.value,
        Action.USER_PERMISSIONS_CHANGED.value,
        Action.GROUP_PERMISSIONS_CHANGED.value,
        Action.MEMBERSHIP_ADDED.value,
        Action.MEMBERSHIP_REMOVED.value,
        Action.MEMBERSHIP_ROLE_SET.value,
    }
)
MEMORY_ACCESS_ACTIONS = frozenset(
    member.value for member in Action if member.value.startswith(("memory.", "context."))
)


def action_area(value: str) -> str:
    """Return the area of an action value (``"auth"`` for ``"auth.login_failed"``)."""
    return value.split(".", 1)[0]
