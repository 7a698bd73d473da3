"""Assertions shared by the API tests."""

from __future__ import annotations

from django.urls import reverse


def url(name: str, **kwargs) -> str:
    """The path of an API v1 route."""
    return reverse(f"api-v1:{name}", kwargs=kwargs or None)


def assert_error(response, status: int, code: str, *, fields=None) -> dict:
    """Assert ``response`` is the error envelope with ``status`` and ``code``; return its body.

    ``fields``: the exact set of field names the envelope must name (``None``: don't check).
    """
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == code, error
    assert error["message"]
    assert error["request_id"] == response["X-Request-ID"]
    if fields is not None:
        assert set(error.get("fields", {})) == set(fields), error
    return error
