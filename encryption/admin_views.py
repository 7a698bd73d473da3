"""The key page of the security console: every key ring, which key protects how many rows, and rotation.

Holders of ``encryption.view_key_usage`` (the security auditor and administrator, superusers) see,
for every purpose (``encryption.keyring.PURPOSES``), the key ids of its ring with the primary
first, and for the purposes whose use is rows in tables (``COUNTED_PURPOSES``) how many stored
values each key id still protects (read without decrypting); the other purposes are shown as "not
counted", with what they protect. Holders of ``encryption.rotate_keys`` (the security
administrator, superusers) can start a rotation; any other POST is refused with 403, which the
console's 403 handler records. The rotation
runs in a Celery worker (``encryption.encryption_keys_rotate``) with the acting administrator as
its actor, so its start and finish are audit events like any other rotation; the page only hands
the work over.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_http_methods

from encryption.errors import KeyConfigurationError
from encryption.keyring import PURPOSES, get_key_ring
from encryption.models import ROTATE_KEYS_PERMISSION, VIEW_KEY_USAGE_PERMISSION
from encryption.selectors import COUNTED_PURPOSES, LEGACY_FERNET_KEY_ID, NOT_A_TOKEN, encryption_key_usage
from encryption.tasks import encryption_keys_rotate_task

# What the keys of each purpose protect, shown beside the ring.
PROTECTS = {
    "field": "encrypted columns (memory content, TOTP keys, signing secrets, ...)",
    "blind_index": "blind indexes: searchable MACs of encrypted values",
    "audit_chain": "MACs of the audit chain; each event names its key (checked by manage.py audit_verify)",
    "backup": "encrypted backup files; each file names its key (manage.py verify_backup)",
    "audit_archive": "encrypted audit archive files; each file names its key",
    "audit_checkpoint": "Ed25519 signatures of the audit checkpoints (manage.py audit_checkpoint --public-key)",
}


def _status(key_id: str, ring_ids: list[str], retirable: list[str]) -> str:
    if ring_ids and key_id == ring_ids[0]:
        return "primary (encrypts)"
    if key_id in retirable:
        return "no rows left: can be retired"
    if key_id in ring_ids:
        return "still in use (decrypts)"
    if key_id == LEGACY_FERNET_KEY_ID:
        return "legacy Fernet values: rotate to convert"
    if key_id == NOT_A_TOKEN:
        return "not encrypted or unrecognised"
    return "not in the ring: these rows cannot be read"


def _purpose_usage(purpose: str) -> dict:
    entry = {"purpose": purpose, "protects": PROTECTS.get(purpose, ""), "counted": purpose in COUNTED_PURPOSES}
    try:
        ring_ids = get_key_ring(purpose).ids
        usage = encryption_key_usage(purpose=purpose) if entry["counted"] else None
    except KeyConfigurationError as error:
        return {**entry, "error": str(error), "rows": []}
    if usage is None:
        entry["rows"] = [
            {"key_id": key_id, "count": None, "status": "primary" if index == 0 else "older (reads only)"}
            for index, key_id in enumerate(ring_ids)
        ]
        return entry
    retirable = usage.retirable()
    entry["rows"] = [
        {"key_id": key_id, "count": usage.totals.get(key_id, 0), "status": _status(key_id, ring_ids, retirable)}
        for key_id in [*ring_ids, *sorted(set(usage.totals) - set(ring_ids))]
    ]
    return entry


@require_http_methods(["GET", "POST"])
def key_ring_view(request):
    """Show every key ring and its keys' usage (GET, ``view_key_usage``); start a rotation (POST, ``rotate_keys``)."""
    if not request.user.has_perm(VIEW_KEY_USAGE_PERMISSION):
        raise PermissionDenied
    can_rotate = request.user.has_perm(ROTATE_KEYS_PERMISSION)
    if request.method == "POST":
        if not can_rotate:
            raise PermissionDenied
        encryption_keys_rotate_task.delay(actor_id=request.user.pk)
        messages.success(
            request,
            "Key rotation started in a worker. The audit trail records its start and finish; "
            "reload this page to see rows move to the primary key.",
        )
        return redirect("encryption-keys")
    usages = [_purpose_usage(purpose) for purpose in PURPOSES]
    context = {
        **admin.site.each_context(request), "title": "Encryption keys", "usages": usages, "can_rotate": can_rotate,
    }
    return TemplateResponse(request, "admin/encryption/keys.html", context)
