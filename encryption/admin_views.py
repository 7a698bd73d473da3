"""The key page of the security console: which key protects how many rows, and rotation.

Superusers see, per purpose, every key id of the ring and how many stored values each still
protects (read without decrypting), and can start a rotation. The rotation runs in a Celery
worker (``encryption.encryption_keys_rotate``) with the acting administrator as its actor, so its
start and finish are audit events like any other rotation; the page only hands the work over.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_http_methods

from encryption.selectors import encryption_key_usage
from encryption.tasks import encryption_keys_rotate_task


@require_http_methods(["GET", "POST"])
def key_ring_view(request):
    """Show key usage (GET); start a rotation in a worker (POST). Superusers only."""
    if not request.user.is_superuser:
        raise PermissionDenied
    if request.method == "POST":
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
    context = {**admin.site.each_context(request), "title": "Encryption keys", "usages": usages}
    return TemplateResponse(request, "admin/encryption/keys.html", context)
