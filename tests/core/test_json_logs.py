"""Every log line is one sanitised JSON object carrying the request context."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog
from django.http import HttpResponse
from django.test import Client
from django.urls import path

from core.logging import JsonFormatter, SanitisingFilter


def log_from_a_view(request):
    request.user  # noqa: B018  (evaluate the lazy user, as any real view does)
    logging.getLogger("tests.view").warning("view ran", extra={"session_key": "abc123", "rows": 2})
    return HttpResponse("ok")


urlpatterns = [path("log", log_from_a_view)]


@pytest.fixture
def log_lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(SanitisingFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)


@pytest.mark.django_db
def test_a_log_line_inside_a_request_carries_request_id_user_id_and_client_ip(settings, log_lines, django_user_model):
    settings.ROOT_URLCONF = __name__
    user = django_user_model.objects.create_user(username="logan", password="x" * 20)
    client = Client(REMOTE_ADDR="198.51.100.23")
    client.force_login(user)
    response = client.get("/log", HTTP_X_REQUEST_ID="req-log-000001")
    assert response.status_code == 200
    line = next(line for line in log_lines() if line["logger"] == "tests.view")
    assert list(line)[:7] == ["timestamp", "level", "logger", "message", "request_id", "user_id", "client_ip"]
    assert line["timestamp"].endswith("Z")
    assert line["level"] == "warning"
    assert line["message"] == "view ran"
    assert line["request_id"] == "req-log-000001"
    assert line["user_id"] == str(user.pk)
    assert line["client_ip"] == "198.51.100.23"
    assert line["session_key"] == "[MASKED]"
    assert line["rows"] == 2


def test_secrets_and_line_breaks_never_reach_a_line(log_lines):
    logging.getLogger("tests.plain").error("login failed password=hunter2\n{\"level\": \"forged\"}")
    structlog.get_logger("tests.structured").info(
        "key issued", api_key="nk_live_0123456789abcdef0123456789", authorization="Bearer abc.def.ghi"
    )
    lines = log_lines()
    assert len(lines) == 2, "a newline in a message must not start a second line"
    text = json.dumps(lines)
    for secret in ("hunter2", "nk_live_0123456789abcdef0123456789", "abc.def.ghi"):
        assert secret not in text
    assert lines[1]["api_key"] == "[MASKED]"
    assert lines[1]["message"] == "key issued"
