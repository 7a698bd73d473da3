"""The key page of the security console: which key protects how many rows, and rotation.

Holders of ``encryption.view_key_usage`` (the security auditor and administrator, and
superusers) see, per purpose, every key id of the ring and how many stored values each still
protects (read without decrypting); holders of ``encryption.rotate_keys`` (the security
administrator, superusers) can start a rotation. Any other POST is refused with 403 before any
work is handed over, and the console's 403 handler records it. The rotation runs in a Celery
worker (``encryption.encryption_keys_rotate``) with the acting administrator as its actor, so its
start and finish are audit events like any other rotation; the page only hands the work over.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_http_methods

from encryption.models import ROTATE_KEYS_PERMISSION, VIEW_KEY_USAGE_PERMISSION
from encryption.selectors import encryption_key_usage
from encryption.tasks import encryption_keys_rotate_task


@require_http_methods(["GET", "POST"])
def key_ring_view(request):
    """Show key usage (GET, ``encryption.view_key_usage``); start a rotation (POST, ``encryption.rotate_keys``)."""
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
    usages = []
    for purpose in ("field", "blind_index"):
        usage = encryption_key_usage(purpose=purpose)
        usages.append(
            {
                "purpose": purpose,
                "rows": [
                    {
                        "key_id": key_id,
                        "count": usage.totals.get(key_id, 0),
                        "primary": key_id == usage.primary_id,
                        "retirable": key_id in usage.retirable(),
                    }
                    for key_id in [*usage.ring_ids, *sorted(set(usage.totals) - set(usage.ring_ids))]
                ],
            }
        )
    context = {
        **admin.site.each_context(request), "title": "Encryption keys", "usages": usages, "can_rotate": can_rotate,
    }
    return TemplateResponse(request, "admin/encryption/keys.html", context)
