"""The production server: real gunicorn with deploy/gunicorn.conf.py, serving the test database.

Its access log is one JSON object per line with the request id the response carried and never a
query string, cookie or Authorization value; static files are served hashed, gzip-compressed and
cached for ever while pages are never compressed (BREACH); SIGHUP reloads without a failed
request; SIGTERM stops the server with exit status 0; a response that streams for longer than
the worker timeout completes (the threaded worker keeps beating), where the synchronous worker
was killed halfway.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from tests.deploy import streaming_urls
from tests.support.servers import PROJECT_DIR, WebServer, gunicorn_server, served_env

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]

CONFIG_FILE = PROJECT_DIR / "deploy" / "gunicorn.conf.py"
QUERY_SECRET = "query-secret-4f9c2a"
COOKIE_SECRET = "cookie-secret-8d1e7b"
AUTHORIZATION_SECRET = "authorization-secret-3a6f0c"
STYLESHEET = re.compile(r'href="/static/(accounts/accounts\.[0-9a-f]{12}\.css)"')


@pytest.fixture(scope="module")
def collected_static() -> Path:
    """``collectstatic`` with the production storage, once for the module (a few seconds)."""
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=PROJECT_DIR,
        env=served_env(),
        check=True,
        timeout=300,
    )
    return Path(settings.VAR_DIR) / "static-collected"


@pytest.fixture
def server(transactional_db, collected_static):
    with gunicorn_server() as running:
        yield running


def get(server: WebServer, path: str, headers: dict | None = None, *, timeout: float = 30.0):
    """GET ``path``; return the response and its body."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


def access_entries(server: WebServer, count: int, *, timeout: float = 10.0) -> list[dict]:
    """The access log once it has ``count`` lines, each parsed as JSON (gunicorn writes it after the response)."""
    deadline = time.monotonic() + timeout
    while len(lines := server.access_lines()) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(lines) >= count, f"{len(lines)} access log lines, expected {count}: {lines}"
    return [json.loads(line) for line in lines]


def booted_workers(server: WebServer) -> list[int]:
    messages = [json.loads(line)["message"] for line in server.error_text().splitlines() if line.startswith("{")]
    return [int(message.rsplit(" ", 1)[1]) for message in messages if message.startswith("Booting worker with pid:")]


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_access_log_is_one_json_object_per_request_with_the_request_id_and_no_secret(server):
    """Fields from an allow-list only: the path without its query, never a cookie or Authorization."""
    secrets_sent = {
        "Cookie": f"sessionid={COOKIE_SECRET}; csrftoken={COOKIE_SECRET}",
        "Authorization": f"Bearer {AUTHORIZATION_SECRET}",
    }
    page, body = get(server, f"/accounts/login/?next=/admin/&token={QUERY_SECRET}", secrets_sent)
    assert page.status == 200
    stylesheet = STYLESHEET.search(body.decode()).group(1)
    asset, asset_body = get(server, f"/static/{stylesheet}?v={QUERY_SECRET}", {"X-Request-ID": "client-chosen-id-42"})
    assert asset.status == 200

    # Threaded workers write each line when its request is done, not in the order of arrival.
    entries = {entry["request_id"]: entry for entry in access_entries(server, 2)}
    page_entry, asset_entry = entries[page.getheader("X-Request-ID")], entries["client-chosen-id-42"]
    assert page_entry["request_id"] == page.getheader("X-Request-ID")
    assert asset_entry["request_id"] == asset.getheader("X-Request-ID") == "client-chosen-id-42"
    assert page_entry["logger"] == "gunicorn.access"
    assert {key: page_entry[key] for key in ("method", "path", "status", "bytes", "client_ip")} == {
        "method": "GET", "path": "/accounts/login/", "status": 200, "bytes": len(body), "client_ip": "127.0.0.1",
    }  # fmt: skip
    assert (asset_entry["path"], asset_entry["status"], asset_entry["bytes"]) == (
        f"/static/{stylesheet}", 200, len(asset_body),
    )  # fmt: skip
    assert isinstance(page_entry["duration_ms"], float) and page_entry["duration_ms"] >= 0
    everything = server.access_log.read_text() + server.error_text()
    for secret in (QUERY_SECRET, COOKIE_SECRET, AUTHORIZATION_SECRET):
        assert secret not in everything
    assert "?" not in server.access_log.read_text()


def test_static_files_are_hashed_compressed_and_cached_for_ever_but_pages_are_never_compressed(
    server, collected_static
):
    page, body = get(server, "/accounts/login/", {"Accept-Encoding": "gzip, br"})
    assert page.getheader("Content-Encoding") is None  # BREACH: dynamic responses stay uncompressed
    stylesheet = STYLESHEET.search(body.decode()).group(1)

    plain, plain_body = get(server, f"/static/{stylesheet}")
    gzipped, gzipped_body = get(server, f"/static/{stylesheet}", {"Accept-Encoding": "gzip"})

    assert plain_body == (collected_static / stylesheet).read_bytes()
    assert plain.getheader("Content-Encoding") is None
    assert gzipped.getheader("Content-Encoding") == "gzip"
    assert gzipped_body == (collected_static / f"{stylesheet}.gz").read_bytes()
    assert len(gzipped_body) < len(plain_body)
    assert "immutable" in plain.getheader("Cache-Control")
    assert plain.getheader("Vary") == "Accept-Encoding"
    # The site-wide headers reach static files too (WhiteNoise sits after them), CORS does not.
    assert plain.getheader("X-Request-ID")
    assert plain.getheader("Content-Security-Policy")
    assert plain.getheader("X-Content-Type-Options") == "nosniff"
    assert plain.getheader("Access-Control-Allow-Origin") is None


def test_sighup_reloads_the_workers_without_a_failed_request(server):
    """gunicorn's graceful reload: new workers boot, the old one finishes and exits, nothing is refused."""
    assert get(server, "/healthz")[0].status == 200
    [old_worker] = booted_workers(server)

    server.process.send_signal(signal.SIGHUP)
    statuses = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        statuses.append(get(server, "/healthz")[0].status)
        new_workers = [pid for pid in booted_workers(server) if pid != old_worker]
        if new_workers and not is_alive(old_worker) and len(statuses) >= 20:
            break
        time.sleep(0.02)

    assert new_workers, "no worker booted after SIGHUP"
    assert not is_alive(old_worker), "the old worker still runs after the reload"
    assert set(statuses) == {200}
    assert server.process.poll() is None
    after, _ = get(server, "/healthz")
    entries = access_entries(server, len(statuses) + 2)
    assert len(entries) == len(statuses) + 2, "the reload doubled or lost access log lines"
    assert after.getheader("X-Request-ID") in {entry["request_id"] for entry in entries}


def test_sigterm_stops_the_server_with_exit_status_0(server):
    assert get(server, "/healthz")[0].status == 200
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=15) == 0
    assert time.monotonic() - started < 15
    assert "Shutting down: Master" in server.error_text()


STREAMING_SETTINGS = "tests.deploy.streaming_settings"
STREAMED_BODY = b"".join(streaming_urls.piece(index) for index in range(1, streaming_urls.PIECES + 1))


def _stream(server: WebServer) -> tuple[int, bytes]:
    """GET the 4-second stream; return its status and whatever body arrived before the end or a cut."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("GET", "/test-slow-stream/")
        response = connection.getresponse()
        try:
            return response.status, response.read()
        except http.client.IncompleteRead as cut:
            return response.status, cut.partial
        except ConnectionError:  # cut by a reset rather than a close: what arrived is unknown, not all
            return response.status, b""
    finally:
        connection.close()


def test_a_response_streaming_longer_than_the_worker_timeout_completes():
    """The export of a million events streams for about a minute: no worker timeout may cut it.

    Here the timeout is 2 s and the stream lasts 4 s; the worker is neither killed nor replaced.
    """
    with gunicorn_server(extra_env={"DJANGO_SETTINGS_MODULE": STREAMING_SETTINGS, "WEB_TIMEOUT": "2"}) as server:
        status, body = _stream(server)
        assert (status, body) == (200, STREAMED_BODY)
        assert "WORKER TIMEOUT" not in server.error_text()
        # The one worker that answered is still the only one (the master listens before it boots,
        # so it is counted after the response, not before).
        [worker] = booted_workers(server)
        assert is_alive(worker)


def test_the_synchronous_worker_cuts_the_same_stream_at_the_timeout():
    """Why the configuration's worker is threaded: the synchronous worker, silent while it answers,
    is killed by the master at the timeout and the client gets a cut body (the test above's premise).
    One thread: with more, gunicorn swaps the synchronous worker for the threaded one by itself."""
    with gunicorn_server(
        extra_env={"DJANGO_SETTINGS_MODULE": STREAMING_SETTINGS, "WEB_TIMEOUT": "2",
                   "GUNICORN_CMD_ARGS": "--worker-class sync --threads 1"}
    ) as server:
        status, body = _stream(server)
        assert status == 200 and len(body) < len(STREAMED_BODY)
        assert "WORKER TIMEOUT" in server.error_text()


def _load_config(monkeypatch, **environment: str) -> dict:
    for name in ("WEB_BIND", "WEB_CONCURRENCY", "WEB_THREADS", "WEB_TIMEOUT", "WEB_GRACEFUL_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("gunicorn_config_under_test", CONFIG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return vars(module)


def test_config_binds_loopback_with_workers_from_the_cpus_unless_told_otherwise(monkeypatch):
    defaults = _load_config(monkeypatch)
    assert defaults["bind"] == ["127.0.0.1:8000"]
    assert defaults["workers"] == 2 * len(os.sched_getaffinity(0)) + 1
    assert (defaults["worker_class"], defaults["threads"]) == ("gthread", 4)
    assert (defaults["timeout"], defaults["graceful_timeout"]) == (30, 30)
    # gunicorn trusts no forwarded header: the app's settings decide (SECURE_PROXY_SSL, trusted proxies).
    assert (defaults["forwarded_allow_ips"], defaults["secure_scheme_headers"], defaults["forwarder_headers"]) == (
        "", {}, "",
    )  # fmt: skip
    told = _load_config(monkeypatch, WEB_BIND="0.0.0.0:9000", WEB_CONCURRENCY="3", WEB_THREADS="8", WEB_TIMEOUT="60")
    assert (told["bind"], told["workers"], told["threads"], told["timeout"]) == (["0.0.0.0:9000"], 3, 8, 60)
