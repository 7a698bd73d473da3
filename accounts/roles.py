"""The two security roles besides superuser: groups with exact permissions (docs/PERMISSIONS.md).

The groups are created by the data migration ``accounts/migrations/0004_security_roles.py``,
which keeps its own frozen copy of these lists (a migration must not change when this module
does); ``tests/accounts/test_security_roles.py`` checks that the two agree. To change a role,
change it here and add a migration.

* The **security auditor** sees the console's security views and changes nothing.
* The **security administrator** has the auditor's rights plus the security operations: alert
  triage, unlocking accounts, ending sessions, revoking API keys, removing a lost authenticator
  and starting a key rotation. Neither role can change users' flags, groups or permissions,
  create users, issue keys or edit the memories' structure: that stays with superusers.
"""

from __future__ import annotations

SECURITY_AUDITOR = "Security auditor"
SECURITY_ADMINISTRATOR = "Security administrator"

# The permissions of the accounts app's own operations (custom ones, on the models' Meta).
UNLOCK_PERMISSION = "accounts.unlock_user"
REVOKE_SESSION_PERMISSION = "accounts.revoke_session"
REMOVE_AUTHENTICATOR_PERMISSION = "accounts.remove_totpdevice"

AUDITOR_PERMISSIONS: tuple[str, ...] = (
    "audit.view_auditevent",
    "audit.export_auditevent",
    "monitoring.view_alert",
    "monitoring.view_jobrun",
    "monitoring.view_report",
    "monitoring.view_notification",
    "accounts.view_user",
    "accounts.view_trackedsession",
    "accounts.view_failurecounter",
    "accounts.view_totpdevice",
    "api.view_apikey",
    "encryption.view_key_usage",
)

ADMINISTRATOR_PERMISSIONS: tuple[str, ...] = (
    *AUDITOR_PERMISSIONS,
    "monitoring.triage_alert",
    UNLOCK_PERMISSION,
    REVOKE_SESSION_PERMISSION,
    REMOVE_AUTHENTICATOR_PERMISSION,
    "api.revoke_apikey",
    "encryption.rotate_keys",
)

ROLES: dict[str, tuple[str, ...]] = {
    SECURITY_AUDITOR: AUDITOR_PERMISSIONS,
    SECURITY_ADMINISTRATOR: ADMINISTRATOR_PERMISSIONS,
}
