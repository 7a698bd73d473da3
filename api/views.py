"""Project-wide error handlers: the JSON envelope under /api/, a plain page elsewhere.

Neither ever shows an exception's text or a stack trace (outside ``local`` settings with DEBUG).
"""

from __future__ import annotations

from django.http import JsonResponse
from django.shortcuts import render

from api.errors import error_body


def _handler(status_code: int, template: str):
    def view(request, exception=None):
        if request.path.startswith("/api/"):
            return JsonResponse(error_body(status_code), status=status_code)
        return render(request, template, {"request_id": getattr(request, "request_id", None)}, status=status_code)

    view.__name__ = f"handler{status_code}"
    return view


bad_request = _handler(400, "errors/400.html")
permission_denied = _handler(403, "errors/403.html")
page_not_found = _handler(404, "errors/404.html")


def server_error(request):
    """500 handler: takes no exception argument (Django's contract for handler500)."""
    return _handler(500, "errors/500.html")(request)
