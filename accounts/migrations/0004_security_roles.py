"""The security auditor and security administrator groups (accounts/roles.py, docs/PERMISSIONS.md).

Frozen copy of the roles: this migration does not import ``accounts.roles``, so a later change
of a role needs a migration of its own.

* Idempotent: permissions and content types are looked up before they are created (they may
  not exist yet on a fresh database: Django creates model permissions after the last
  migration), and a group that exists already is left exactly as it is, so a second run
  changes nothing and no existing group is granted anything.
* Reversible: the reverse deletes a role's group only while it still holds exactly the role's
  permissions (one an operator changed is theirs now, and stays).
"""

from django.db import migrations

# (app label, model, codename, name): the names are Django's own ("Can view <verbose name>")
# or those of the models' Meta.permissions, so post_migrate finds them and adds no duplicate.
PERMISSIONS = {
    "audit.view_auditevent": ("audit", "auditevent", "Can view audit event"),
    "audit.export_auditevent": ("audit", "auditevent", "Can export audit events"),
    "monitoring.view_alert": ("monitoring", "alert", "Can view alert"),
    "monitoring.view_jobrun": ("monitoring", "jobrun", "Can view job run"),
    "monitoring.view_report": ("monitoring", "report", "Can view report"),
    "monitoring.view_notification": ("monitoring", "notification", "Can view notification"),
    "accounts.view_user": ("accounts", "user", "Can view user"),
    "accounts.view_trackedsession": ("accounts", "trackedsession", "Can view tracked session"),
    "accounts.view_failurecounter": ("accounts", "failurecounter", "Can view failure counter"),
    "accounts.view_totpdevice": ("accounts", "totpdevice", "Can view TOTP device"),
    "api.view_apikey": ("api", "apikey", "Can view API key"),
    "encryption.view_key_usage": ("encryption", "keyring", "Can see which key protects how many rows"),
    "monitoring.triage_alert": ("monitoring", "alert", "Can acknowledge, resolve or dismiss alerts"),
    "accounts.unlock_user": ("accounts", "user", "Can unlock accounts (clear lockout counters)"),
    "accounts.revoke_session": ("accounts", "trackedsession", "Can end other users' sessions"),
    "accounts.remove_totpdevice": ("accounts", "totpdevice", "Can remove a user's authenticator (a lost device)"),
    "api.revoke_apikey": ("api", "apikey", "Can revoke API keys"),
    "encryption.rotate_keys": ("encryption", "keyring", "Can start an encryption key rotation"),
}

AUDITOR = [
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
]
ADMINISTRATOR = [
    *AUDITOR,
    "monitoring.triage_alert",
    "accounts.unlock_user",
    "accounts.revoke_session",
    "accounts.remove_totpdevice",
    "api.revoke_apikey",
    "encryption.rotate_keys",
]
ROLES = {"Security auditor": AUDITOR, "Security administrator": ADMINISTRATOR}


def _permission(apps, dotted: str):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    app_label, model, name = PERMISSIONS[dotted]
    content_type, _ = ContentType.objects.get_or_create(app_label=app_label, model=model)
    permission, _ = Permission.objects.get_or_create(
        content_type=content_type, codename=dotted.split(".", 1)[1], defaults={"name": name}
    )
    return permission


def create_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for group_name, dotted_names in ROLES.items():
        if Group.objects.filter(name=group_name).exists():
            continue
        group = Group.objects.create(name=group_name)
        group.permissions.set([_permission(apps, dotted) for dotted in dotted_names])


def delete_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for group_name, dotted_names in ROLES.items():
        group = Group.objects.filter(name=group_name).first()
        if group is None:
            continue
        held = {
            f"{app_label}.{codename}"
            for app_label, codename in group.permissions.values_list("content_type__app_label", "codename")
        }
        if held == set(dotted_names):
            group.delete()


class Migration(migrations.Migration):
    # Only what the rows need: the permissions are looked up or created by content type, so no
    # other app's migration has to run first (and migrating another app back and forth, as a
    # test of its own migrations does, leaves this one applied).
    dependencies = [
        ("accounts", "0003_security_permissions"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, delete_roles)]
