"""The context keys of every audit action: what a reader of the trail may find under each action.

``CONTEXT_SCHEMAS`` maps each ``Action`` to the keys its JSON ``context`` may carry, each with a
type and a one-line meaning, as the producers write them today. It is the documentation of the
trail (``manage.py audit_schema`` prints it as ``docs/audit-events.md``) and the contract of
``record()``: a key an action does not declare raises under ``AUDIT_STRICT_CONTEXT`` (the test
settings) and is kept but logged once otherwise. Readers (the detectors) name the keys they read
through ``declared_key``. Every key is optional: events recorded before a key existed lack it.
"""

from __future__ import annotations

import logging

from audit import conf
from audit.actions import Action, action_area

logger = logging.getLogger("audit.schema")

# key -> (type, meaning). Types are documentation: record() checks the keys, not the values.
Keys = dict[str, tuple[str, str]]

_REFUSAL: Keys = {
    "reason": ("str", "the rule that refused the request (e.g. throttled, insufficient_scope, wrong_secret)"),
    "status": ("int", "the HTTP status answered"),
    "method": ("str", "the HTTP method"),
    "path": ("str", "the request path, any API key in it cut to its public prefix"),
}
_THROTTLE: Keys = {"scope": ("str", "the throttle scope of the request, when one applied")}
_CSRF: Keys = {
    "detail": ("str", "Django's reason, when reason is csrf_failed"),
    "path": ("str", "the request path, when reason is csrf_failed"),
}
_LOCK: Keys = {
    "kind": ("str", "which counter locked: password or mfa"),
    "scope": ("str", "what is locked: account, or address (the account from one IP)"),
    "failures": ("int", "failures counted when the lock was set"),
    "until": ("str", "end of the lock (ISO 8601)"),
}
_LINK_FAILURE: Keys = {"reason": ("str", "why the link was refused: malformed, expired, tampered, used, email_in_use")}
_DEVICE: Keys = {"device_name": ("str", "the name the user gave the authenticator")}
_PRIVILEGE_FLAG: Keys = {
    "field": ("str", "the flag: is_staff or is_superuser"),
    "old": ("bool", "its value before"),
    "new": ("bool", "its value after"),
}
_ACTIVE_FLAG: Keys = {
    "field": ("str", "the flag: is_active"),
    "old": ("bool", "its value before"),
    "new": ("bool", "its value after"),
}
_ACCESS_ENDED: Keys = {
    "ended": ("int", "sessions of the account ended with it (one auth.session_revoked_all)"),
    "api_keys_revoked": ("int", "API keys of the account revoked with it (each its own api.key_revoked)"),
}
_NAMES_CHANGED: Keys = {
    "added": ("list[str]", "names added (groups, or permissions as app_label.codename)"),
    "removed": ("list[str]", "names removed (same form)"),
    "old": ("list[str]", "every name held before the change (same form)"),
    "new": ("list[str]", "every name held after the change (same form)"),
}
_ROLE: Keys = {
    "role": ("str | None", "the role now: viewer, member, maintainer, admin, owner (None once removed)"),
    "previous_role": ("str | None", "the role before (None when newly added)"),
    "scope": ("str", "where: team or organization"),
}
_TRANSFER_OFFER: Keys = {
    "offer_id": ("int", "id of the transfer offer"),
    "sender_id": ("int", "id of the user who offered the context"),
    "recipient_id": ("int", "id of the user the context is offered to"),
    "expires_at": ("str", "when the offer lapses (ISO 8601)"),
}
_IN_CONTEXT: Keys = {"context_id": ("int", "id of the memory's context")}
_SHARE: Keys = {
    "permission": ("str", "the share's permission: read, write, admin"),
    "grantee_type": ("str", "who holds the share: user or team"),
    "grantee_id": ("int", "id of that user or team"),
}
_DEPLOYMENT: Keys = {
    "from_revision": ("str", "the revision that served before (a git commit hash or a version tag)"),
    "to_revision": ("str", "the revision that serves after"),
    "environment": ("str", "where: the deployment's environment name (production, staging, ...)"),
    "tool": ("str", "what ran it: the deploy tool's name (bluegreen, manual, ...)"),
    "os_user": ("str", "operating-system user that recorded it"),
    "host": ("str", "the host name it was recorded on"),
    "note": ("str", "the operator's note, when given (at most 200 characters, sanitised)"),
}
_VERIFICATION: Keys = {
    "from_sequence": ("int | None", "first sequence checked (None: from the start)"),
    "to_sequence": ("int | None", "last sequence asked for (None: to the end)"),
    "full": ("bool", "whether the whole chain was checked"),
    "checked": ("int", "events checked"),
    "tombstones": ("int", "tombstones of archived events checked"),
    "skipped": ("int", "numbers the sealer stepped over (forged rows held them)"),
    "reconciled_lost": ("int", "numbers lost with a restore and named by a reconcile"),
    "last_sequence": ("int", "last sequence reached"),
    "unsealed": ("int", "committed events not yet sealed"),
    "problem_count": ("int", "problems found"),
    "first_bad_sequence": ("int | None", "sequence of the first problem (None: none)"),
    "first_problems": ("list[str]", "the first five problems, described"),
    "published_sequence": ("int", "sequence of the head published after this check"),
}
_ARCHIVE: Keys = {
    "archive_file": ("str", "name of the archive file"),
    "archive_sha256": ("str", "SHA-256 of the archive file"),
    "count": ("int", "events in the archive"),
    "first_sequence": ("int", "first archived sequence"),
    "last_sequence": ("int", "last archived sequence"),
}
_ROTATION_KEYS: Keys = {
    "field_key_id": ("str", "id of the primary field key values are rotated to"),
    "blind_index_key_id": ("str", "id of the primary blind-index key"),
}
_BACKUP: Keys = {
    "file": ("str", "name of the backup file"),
    "database": ("str", "database vendor of the dump"),
    "key_id": ("str", "id of the backup key that sealed it"),
    "dump_bytes": ("int", "size of the dump"),
    "file_bytes": ("int", "size of the sealed file"),
    "dump_sha256": ("str", "SHA-256 of the dump"),
    "tables": ("int", "tables dumped (created) or restored (verified)"),
    "rows": ("int", "rows dumped or restored"),
    "seconds": ("float", "duration"),
}
_TRANSITION: Keys = {
    "from": ("str", "the alert's status before"),
    "to": ("str", "its status now"),
    "detector": ("str", "the detector that raised it"),
    "note_given": ("bool", "whether a triage note was added"),
}
_SUPPRESSION: Keys = {
    "detector": ("str", "the detector the rule silences"),
    "subject_type": ("str", "user, ip, api_key, job or system"),
    "subject": ("str", "the subject it silences the detector for (a username, IP, key prefix or job)"),
    "expires_at": ("str", "until when it applies (ISO 8601, UTC)"),
    "source_alert": ("int", "the alert it was created from, when it was"),
    "suppressed": ("int", "detections it had kept from alerting (ended or deleted rules)"),
    "reason_given": ("bool", "whether a reason was written (the reason itself stays on the rule)"),
}

CONTEXT_SCHEMAS: dict[Action, Keys] = {
    # --- Authentication --------------------------------------------------------------------
    Action.LOGIN_SUCCEEDED: {"method": ("str", "password, password+totp or password+backup_code")},
    Action.LOGIN_FAILED: {
        "reason": ("str", "bad_credentials, locked, email_unverified, invalid_input or csrf_failed"),
        "stage": ("str", "the step that failed: password"),
        "purpose": ("str", "login or step_up"),
        "retry_at": ("str", "when a locked account may try again (ISO 8601)"),
        **_CSRF,
    },
    Action.LOGOUT: {},
    Action.REAUTHENTICATED: {"method": ("str", "password, totp or backup_code")},
    Action.PASSWORD_CHANGED: {
        "others_ended": ("int", "other sessions ended by the change"),
        "api_keys_revoked": ("int", "API keys revoked with it (the page's checkbox, on by default)"),
    },
    Action.PASSWORD_RESET_REQUESTED: {"reason": ("str", "no_matching_account (the request was ignored)")},
    Action.PASSWORD_RESET_COMPLETED: {
        "reason": ("str", "invalid_or_expired_link"),
        "api_keys_revoked": ("int", "API keys revoked with the reset (all of the user's)"),
    },
    Action.MFA_DEVICE_ADDED: {**_DEVICE, "confirmed": ("bool", "whether it is confirmed yet")},
    Action.MFA_DEVICE_CONFIRMED: {**_DEVICE, "first_device": ("bool", "whether it is the user's first")},
    Action.MFA_DEVICE_REMOVED: {
        **_DEVICE,
        "confirmed": ("bool", "whether it was confirmed"),
        "backup_set_discarded": ("bool", "whether the backup codes went with the last device"),
    },
    Action.MFA_VERIFY_SUCCEEDED: {
        "purpose": ("str", "login or step_up"),
        "method": ("str", "totp or backup_code"),
    },
    Action.MFA_VERIFY_FAILED: {
        "purpose": ("str", "login, step_up or enrollment"),
        "reason": ("str", "wrong_code, malformed, expired, throttled or locked"),
        "method": ("str", "what the code looked like: totp, backup_code or unknown"),
        "failures": ("int", "consecutive failures counted"),
        "retry_at": ("str", "when a throttled or locked account may try again (ISO 8601)"),
    },
    Action.MFA_CODE_REPLAYED: {
        "purpose": ("str", "login or step_up"),
        "failures": ("int", "consecutive failures counted"),
    },
    Action.BACKUP_CODES_GENERATED: {
        "count": ("int", "codes generated"),
        "replaced_unused": ("int", "unused codes of the old set that stopped working"),
    },
    Action.BACKUP_CODE_USED: {
        "purpose": ("str", "login or step_up"),
        "remaining": ("int", "unused codes left"),
    },
    Action.ACCOUNT_LOCKED: _LOCK,
    Action.ACCOUNT_UNLOCKED: {
        "locks_cleared": ("int", "active locks cleared"),
        "reason": ("str", "password_reset when a reset cleared them"),
    },
    Action.SESSION_CREATED: {
        "method": ("str", "how the user signed in (as for auth.login_succeeded, or other)"),
        "device": ("str", "label of the device, from its user agent"),
    },
    Action.SESSION_REVOKED: {
        "reason": ("str", "revoked or revoked_by_admin; ended_session_used or untracked_session when refused"),
        "ended_by": ("str", "why the session used had ended (refusals only)"),
    },
    Action.SESSION_REVOKED_ALL: {
        "reason": ("str", "revoked, revoked_by_admin, password_changed or password_reset"),
        "ended": ("int", "sessions ended"),
        "kept_current": ("bool", "whether the current session was kept"),
    },
    Action.SESSION_EXPIRED: {"reason": ("str", "idle_timeout or absolute_timeout")},
    Action.EMAIL_VERIFICATION_SENT: {
        "resend": ("bool", "a resend at the user's request"),
        "purpose": ("str", "email_change when it confirms a new address"),
        "reason": ("str", "email_in_use when no link was sent"),
    },
    Action.EMAIL_VERIFIED: _LINK_FAILURE,
    Action.EMAIL_CHANGED: _LINK_FAILURE,
    Action.SIGNUP: {"reason": ("str", "email_in_use (the owner of the address is told instead)")},
    Action.ACCOUNT_DEACTIVATED: {**_ACCESS_ENDED, **_ACTIVE_FLAG},
    Action.ACCOUNT_REACTIVATED: _ACTIVE_FLAG,
    Action.ACCOUNT_DELETED: {
        **_ACCESS_ENDED,
        "was_staff": ("bool", "whether the account was staff when deleted"),
        "was_superuser": ("bool", "whether the account was a superuser when deleted"),
    },
    Action.EMAIL_RATE_LIMITED: {
        "purpose": ("str", "signup or password_reset"),
        "limit": ("str", "client_ip or address: the limit that was reached"),
    },
    Action.SECURITY_NOTIFICATION_SENT: {
        "kind": ("str", "which notification (the email template's name)"),
        "recipient": ("str", "account, or other address (a new address being confirmed)"),
    },
    # --- API security ----------------------------------------------------------------------
    Action.API_KEY_ISSUED: {
        "scopes": ("list[str]", "the key's scopes"),
        "expires_at": ("str", "expiry (ISO 8601)"),
        "allowed_networks": ("int", "networks the key is restricted to (0: any)"),
        "service_account": ("bool", "whether the owner is a service account"),
    },
    Action.API_KEY_ROTATED: {
        "successor": ("str", "public prefix of the new key"),
        "overlap_seconds": ("int", "how long the old key stays valid"),
        "old_expires_at": ("str", "the old key's new expiry (ISO 8601)"),
    },
    Action.API_KEY_REVOKED: {"reason": ("str", "the reason given, when one was")},
    Action.API_KEY_USED: {},
    Action.API_KEY_REFUSED: {
        **_REFUSAL,
        **_THROTTLE,
        "attempted_prefix": ("str", "public prefix sent, when no key matched"),
        "parameter": ("str", "query parameter that carried a credential (credentials in the URL)"),
        "key_prefix": ("str", "public prefix of a key found in the URL"),
    },
    Action.REQUEST_SIGNATURE_FAILED: _REFUSAL,
    Action.DEPRECATED_ENDPOINT_CALLED: {
        **_REFUSAL,
        "endpoint": ("str", "the deprecated endpoint (refusal keys too once it is retired)"),
    },
    Action.RATE_LIMITED: {**_REFUSAL, **_THROTTLE},
    Action.REQUEST_REJECTED: {
        **_REFUSAL,
        **_THROTTLE,
        "fields": ("list[str]", "names of the fields that failed validation (never their values)"),
        "content_length": ("int", "declared body size, when too large"),
        "limit": ("int", "the body size limit that applied"),
        "content_type": ("str", "the media type refused"),
    },
    # --- Authorization ---------------------------------------------------------------------
    Action.PERMISSION_DENIED: {
        **_REFUSAL,
        "reason": (
            "str",
            "the rule that refused: insufficient_scope, no_scope_for_endpoint, csrf_failed, console_permission, ...",
        ),
        "path": ("str", "the request path (API refusals cut any API key in it to its public prefix)"),
        **_THROTTLE,
        "detail": _CSRF["detail"],
        "required_scope": ("str", "the API key scope the endpoint needs"),
        "attempted": ("str", "the memories operation refused (e.g. memory.update)"),
        "answer": ("int", "what the caller was told: 404 or 403"),
        "permission": ("str", "the Django permission missing (alert triage)"),
    },
    Action.STAFF_GRANTED: _PRIVILEGE_FLAG,
    Action.STAFF_REVOKED: _PRIVILEGE_FLAG,
    Action.SUPERUSER_GRANTED: _PRIVILEGE_FLAG,
    Action.SUPERUSER_REVOKED: _PRIVILEGE_FLAG,
    Action.GROUP_MEMBERSHIP_CHANGED: _NAMES_CHANGED,
    Action.USER_PERMISSIONS_CHANGED: _NAMES_CHANGED,
    Action.GROUP_PERMISSIONS_CHANGED: {**_NAMES_CHANGED, "group": ("str", "the group whose permissions changed")},
    # --- Memories and contexts -------------------------------------------------------------
    Action.MEMORY_READ: _IN_CONTEXT,
    Action.MEMORY_LIST: {
        "count": ("int", "memories on the page shown"),
        "total": ("int | None", "memories matching the filters"),
        "filters": ("dict", "the filters given (context, kind, tag)"),
        "context_ids": ("list[int]", "contexts of the memories shown"),
    },
    Action.MEMORY_CREATED: {
        **_IN_CONTEXT,
        "kind": ("str", "the memory's kind"),
        "tag_count": ("int", "tags given"),
    },
    Action.MEMORY_UPDATED: {**_IN_CONTEXT, "fields": ("list[str]", "names of the fields changed")},
    Action.MEMORY_DELETED: _IN_CONTEXT,
    Action.CONTEXT_READ: {"scope": ("str", "personal, team or organization")},
    Action.CONTEXT_LIST: {
        "count": ("int", "contexts on the page shown"),
        "total": ("int | None", "contexts the caller can see"),
        "context_ids": ("list[int]", "the contexts shown"),
    },
    Action.CONTEXT_CREATED: {"scope": ("str", "personal, team or organization")},
    Action.CONTEXT_UPDATED: {"fields": ("list[str]", "names of the fields changed")},
    Action.CONTEXT_DELETED: {"memory_count": ("int", "memories deleted with it")},
    Action.CONTEXT_SHARED: _SHARE,
    Action.CONTEXT_UNSHARED: {**_SHARE, "reason": ("str", "account_deleted: removed with the grantee's account")},
    Action.CONTEXT_TRANSFERRED: {
        "from": ("dict", "the previous owner: scope, owner_type (user, team, organization), owner_id"),
        "to": ("dict", "the new owner, in the same form"),
        "offer_id": ("int", "the accepted transfer offer, when the new owner is a user"),
        "shares_removed": (
            "list[dict]",
            "the shares removed by the recipient's review: id, grantee_type, grantee_id, permission",
        ),
        "shares_kept": ("list[int]", "ids of the shares the recipient kept"),
    },
    Action.CONTEXT_TRANSFER_OFFERED: _TRANSFER_OFFER,
    Action.CONTEXT_TRANSFER_WITHDRAWN: _TRANSFER_OFFER,
    Action.CONTEXT_TRANSFER_DECLINED: _TRANSFER_OFFER,
    Action.CONTEXT_TRANSFER_ACCEPTED: {
        **_TRANSFER_OFFER,
        "shares_kept": ("list[int]", "ids of the shares the recipient kept"),
        "shares_removed": ("list[int]", "ids of the shares removed"),
    },
    Action.CONTEXT_TRANSFER_EXPIRED: _TRANSFER_OFFER,
    Action.CONTEXT_EXPORTED: {"count": ("int", "memories exported")},
    Action.MEMBERSHIP_ADDED: _ROLE,
    Action.MEMBERSHIP_REMOVED: {**_ROLE, "reason": ("str", "account_deleted: removed with the member's account")},
    Action.MEMBERSHIP_ROLE_SET: _ROLE,
    # --- The admin console -----------------------------------------------------------------
    Action.ADMIN_ADDED: {"object": ("str", "kind of object, when added outside the admin's forms (service_account)")},
    Action.ADMIN_CHANGED: {"fields": ("list[str]", "names of the fields changed (never their values)")},
    Action.ADMIN_DELETED: {},
    # --- System ----------------------------------------------------------------------------
    Action.MIGRATION_APPLIED: {
        "app": ("str", "the migration's app"),
        "migration": ("str", "the migration's name"),
        "direction": ("str", "forwards or backwards"),
        "os_user": ("str", "operating-system user that ran migrate"),
        "db_user": ("str", "database role it ran as (empty on SQLite)"),
        "database": ("str", "database vendor"),
        "applied_at": ("str", "when Django marked it applied (ISO 8601)"),
    },
    Action.AUDIT_VERIFIED: _VERIFICATION,
    Action.AUDIT_ARCHIVED: _ARCHIVE,
    Action.AUDIT_PURGED: {**_ARCHIVE, "anchor_sequence": ("int", "the chain's anchor after the purge")},
    Action.AUDIT_HEAD_PUBLISHED: _VERIFICATION,
    Action.KEY_ROTATION_STARTED: _ROTATION_KEYS,
    Action.KEY_ROTATION_FINISHED: {
        **_ROTATION_KEYS,
        "rows_scanned": ("int", "rows read"),
        "rows_updated": ("int", "rows rewritten"),
        "values_failed": ("int", "values that could not be decrypted (left as they were)"),
        "models": ("list[dict]", "the same counts per model"),
    },
    Action.KEY_ROTATION_FAILED: {
        **_ROTATION_KEYS,
        "reason": ("str", "why rotation did not convert everything (an error's type and first line, or a count)"),
        "values_failed": ("int", "values left as they were"),
        "rows_scanned": ("int", "rows read"),
        "problems": ("list[dict]", "the first values left: model, pk, column and reason (never the value)"),
    },
    Action.DECRYPTION_FAILED: {
        "field": ("str", "where the value belongs (app_label.model.column), when known"),
        "key_id": ("str", "id of the key the value names"),
        "reason": ("str", "why decryption failed"),
    },
    Action.BACKUP_CREATED: _BACKUP,
    Action.BACKUP_VERIFIED: {
        **_BACKUP,
        "created_at": ("str", "when the backup was made (ISO 8601)"),
        "values_decrypted": ("int", "encrypted values decrypted as a sample"),
        "models_sampled": ("int", "models sampled"),
    },
    Action.BACKUP_RESTORED: {
        **_BACKUP,
        "created_at": ("str", "when the backup was made (ISO 8601)"),
        "values_decrypted": ("int", "encrypted values decrypted as a sample after the restore"),
        "models_sampled": ("int", "models sampled"),
        "target": ("str", "where it was restored: a SQLite file's name, or a PostgreSQL database and host"),
        "digests_checked": ("int", "tables whose content digest matched the backup's (PostgreSQL)"),
    },
    Action.KEY_RETIRED: {
        "purpose": ("str", "the key ring's purpose"),
        "key_id": ("str", "id of the retired key"),
        "forced": ("bool", "retired with --force although something still needed it"),
        "rows": ("int", "stored values still under the key"),
        "backups": ("list[str]", "backup files that still need the key"),
        "archives": ("list[str]", "audit archives that still need the key"),
        "audit_events": ("int", "audit-chain MACs still made with the key"),
    },
    Action.AUDIT_RECONCILED: {
        "restored_head": ("int", "the restored chain's last sequence, now the published head"),
        "restored_head_hmac_sha256": ("str", "the chain hash of the head re-published"),
        "published_sequence": ("int", "the head published before the restore"),
        "published_at": ("str", "when that head was published (ISO 8601)"),
        "lost_from": ("int", "first sequence lost with the restore (0: none)"),
        "lost_to": ("int", "last sequence lost with the restore (0: none)"),
        "epoch": ("int", "the Merkle tree epoch this reconcile started"),
        "tree_base": ("int", "the sequence before the new epoch's first leaf"),
        "previous_epoch": ("int", "the epoch before"),
        "previous_tree_base": ("int", "the sequence before the previous epoch's first leaf"),
        "unmatched_checkpoint_size": (
            "int",
            "the last published checkpoint the restored tree could not match (0: none)",
        ),
        "unmatched_checkpoint_root_sha256": ("str", "its root hash (hex)"),
        "unmatched_checkpoint_source": ("str", "where it was published (checkpoints.log, the witness)"),
    },
    Action.AUDIT_FORGED_ROW_SKIPPED: {
        "count": ("int", "sequence numbers stepped over in this sealing run"),
        "sequences": ("list[int]", "the numbers (at most 100)"),
        "forged_event_ids": ("list[int]", "the ids of the rows that held them (at most 100)"),
    },
    Action.AUDIT_SEQUENCE_JUMPED: {
        "chain_head": ("int", "the chain head the sealer found"),
        "published_sequence": ("int", "the highest sequence published outside the database"),
        "published_in": ("str", "where: heads.log or checkpoints.log"),
        "next_sequence": ("int", "the number given to the next event"),
    },
    Action.PLAINTEXT_ENCRYPTED: {
        "rows_scanned": ("int", "rows read"),
        "values_encrypted": ("int", "plaintext values encrypted in place"),
        "values_failed": ("int", "values left as they were"),
        "models": ("list[dict]", "the same counts per model and column"),
    },
    Action.BACKUP_FAILED: {
        "operation": ("str", "create, verify or restore"),
        "file": ("str", "name of the backup file"),
        "stage": ("str", "the step that failed"),
        "reason": ("str", "the error"),
    },
    Action.SCHEDULED_JOB_FAILED: {
        "task": ("str", "the Celery task name"),
        "task_id": ("str", "the Celery task id"),
        "error": ("str", "class name of the exception (never its message)"),
    },
    Action.BOOTSTRAP_STARTED: {
        "command": ("str", "the command setting up the install: ensure_admin or load_demo_data"),
    },
    Action.PROCESS_STARTED: {
        "role": ("str", "which process: web, worker or beat"),
        "pid": ("int", "its process id"),
        "host": ("str", "the host name it runs on"),
        "uid": ("int | str", "effective user id (unknown when unreadable)"),
        "gid": ("int | str", "effective group id (unknown when unreadable)"),
        "root_fs_writable": ("bool | str", "whether the root filesystem is mounted writable (unknown when unreadable)"),
        "root_fs_source": ("str", "what answered that: mountinfo, write_probe or unknown"),
        "cap_effective": ("list[str] | str", "effective capabilities by name (unknown when unreadable)"),
        "cap_permitted": ("list[str] | str", "permitted capabilities by name (unknown when unreadable)"),
        "cap_bounding": ("list[str] | str", "bounding set by name (unknown when unreadable)"),
        "no_new_privs": ("bool | str", "whether no_new_privs is set (unknown when unreadable)"),
        "container": ("bool", "whether a sign of a container was found (best effort)"),
        "container_evidence": ("str", "the sign found (/.dockerenv, cgroup:kubepods, ...), empty when none"),
        "revision": ("str", "the image revision (IMAGE_REVISION; unknown when unset, invalid when malformed)"),
    },
    Action.DEPLOYED: _DEPLOYMENT,
    Action.ROLLED_BACK: _DEPLOYMENT,
    # --- Reading the trail -------------------------------------------------------------------
    Action.AUDIT_SEARCHED: {
        "filters": ("dict", "the explorer's filters and search term in use, each value cut to 200 characters"),
        "results": ("int", "events matching, counted up to AUDIT_ADMIN_COUNT_LIMIT"),
        "capped": ("bool", "whether more events matched than were counted"),
    },
    Action.AUDIT_EXPORTED: {
        "filters": ("dict", "the explorer's filters and search term of the export, as for audit.searched"),
        "format": ("str", "csv or jsonl"),
        "rows": ("int", "events the export holds (those matching when it began)"),
    },
    # --- Monitoring ------------------------------------------------------------------------
    Action.ALERT_RAISED: {
        "detector": ("str", "the detector that raised it"),
        "severity": ("str", "its severity"),
        "subject_type": ("str", "user, ip, api_key, job or system"),
        "evidence_events": ("int", "audit events kept as evidence"),
        "detection_seconds": ("float", "from the triggering event to the alert"),
        "status": ("str", "the status it was raised with: open, or resolved for a bootstrap alert"),
        "resolved_because": ("str", "why it was raised already resolved (bootstrap: the command that caused it)"),
    },
    Action.ALERT_ACKNOWLEDGED: _TRANSITION,
    Action.ALERT_RESOLVED: _TRANSITION,
    Action.ALERT_DISMISSED: _TRANSITION,
    Action.ALERT_ASSIGNED: {
        "detector": ("str", "the alert's detector"),
        "assignee": ("str", "username of the administrator now assigned (empty: unassigned)"),
        "previous_assignee": ("str", "username of the administrator assigned before (empty: nobody)"),
        "note_given": ("bool", "whether a note was written with it (the note itself stays on the alert)"),
    },
    Action.SUPPRESSION_CREATED: _SUPPRESSION,
    Action.SUPPRESSION_ENDED: _SUPPRESSION,
    Action.SUPPRESSION_DELETED: _SUPPRESSION,
}

# What build_event() looks up: the declared keys of each action value.
CONTEXT_KEYS: dict[str, frozenset[str]] = {action.value: frozenset(keys) for action, keys in CONTEXT_SCHEMAS.items()}


class UndeclaredContextKey(ValueError):
    """A context key that the action does not declare in ``CONTEXT_SCHEMAS`` (strict mode)."""


_reported: set[tuple[str, str]] = set()


def check_context_keys(action: str, context: dict) -> None:
    """Refuse (strict) or report once (otherwise) each key of ``context`` that ``action`` does not declare.

    ``context`` is the sanitised context, so a reported key is already cleaned; values are never
    logged. One frozenset look-up per key: this runs inside every ``record()``.
    """
    declared = CONTEXT_KEYS[action]
    for key in context:
        if key not in declared:
            _undeclared(action, key)


def _undeclared(action: str, key: str) -> None:
    if conf.get("AUDIT_STRICT_CONTEXT"):
        raise UndeclaredContextKey(
            f"audit action {action} declares no context key {key!r}: add it to CONTEXT_SCHEMAS in audit/schema.py"
        )
    if (action, key) not in _reported:
        _reported.add((action, key))
        logger.warning("audit action %s recorded context key %r, which it does not declare (kept)", action, key)


def declared_key(key: str, *actions: Action) -> str:
    """Return ``key`` after checking that each of ``actions`` declares it: how readers name keys.

    Called at import by the detectors, so a detector that reads a key its actions never carry
    fails at start-up instead of silently reading nothing.
    """
    for action in actions:
        if key not in CONTEXT_SCHEMAS[action]:
            raise LookupError(f"audit action {action.value} declares no context key {key!r} (audit/schema.py)")
    return key


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table() -> str:
    """``docs/audit-events.md``: every action, its area, what it means and its context keys."""
    lines = [
        "# Audit events",
        "",
        "Generated from `audit/schema.py` by `python manage.py audit_schema > docs/audit-events.md`;",
        "do not edit by hand (a test fails when this file is out of date).",
        "",
        "Every event has the same columns (actor, subject, target, request id, client IP, user agent,",
        "outcome, timestamp); the `context` holds only the keys below, each optional: an event",
        "recorded before a key existed lacks it. Values are sanitised when recorded.",
        "",
        "| Action | Area | What it means | Context keys |",
        "|---|---|---|---|",
    ]
    for action, keys in CONTEXT_SCHEMAS.items():
        described = "<br>".join(f"`{key}` ({_cell(kind)}): {_cell(meaning)}" for key, (kind, meaning) in keys.items())
        lines.append(f"| `{action.value}` | {action_area(action.value)} | {_cell(action.label)} | {described or '—'} |")
    return "\n".join(lines) + "\n"
