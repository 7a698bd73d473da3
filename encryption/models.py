"""The encryption app's permissions: it has no table of its own (its fields live in other apps).

``KeyRing`` is an unmanaged model without a table, there only so that the key page's
permissions are ordinary Django permissions that groups can hold (docs/PERMISSIONS.md).
"""

from __future__ import annotations

from django.db import models

VIEW_KEY_USAGE_PERMISSION = "encryption.view_key_usage"
ROTATE_KEYS_PERMISSION = "encryption.rotate_keys"


class KeyRing(models.Model):
    """Never queried: carries the permissions of the console's key page."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_key_usage", "Can see which key protects how many rows"),
            ("rotate_keys", "Can start an encryption key rotation"),
        ]

    def __str__(self) -> str:
        return "key ring"
