"""A local HTTP server that speaks the part of HashiCorp Vault's KV v2 API that we read.

``GET /v1/<mount>/data/<path>`` with ``X-Vault-Token``: 200 with the KV v2 envelope, 403 for a
wrong token, 404 for an unknown path, as Vault answers
(https://developer.hashicorp.com/vault/api-docs/secret/kv/kv-v2#read-secret-version).
It listens on a free loopback port only.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class VaultStub:
    """Run with ``with VaultStub(token=...) as vault:``; ``vault.url`` is its address."""

    def __init__(self, *, token: str) -> None:
        self.token = token
        self.secrets: dict[tuple[str, str], dict] = {}
        self.versions: dict[tuple[str, str], int] = {}
        self.requests: list[tuple[str, str | None]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                return

            def _send(self, status: int, body: dict) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                stub.requests.append((path, self.headers.get("X-Vault-Token")))
                if self.headers.get("X-Vault-Token") != stub.token:
                    return self._send(403, {"errors": ["permission denied"]})
                parts = path.split("/")
                # ['', 'v1', mount, 'data', *path]
                if len(parts) < 5 or parts[1] != "v1" or parts[3] != "data":
                    return self._send(404, {"errors": []})
                key = (parts[2], "/".join(parts[4:]))
                if key not in stub.secrets:
                    return self._send(404, {"errors": []})
                return self._send(
                    200,
                    {
                        "request_id": str(uuid.uuid4()),
                        "lease_id": "",
                        "renewable": False,
                        "lease_duration": 0,
                        "data": {
                            "data": stub.secrets[key],
                            "metadata": {
                                "created_time": "2026-11-28T00:00:00.000000Z",
                                "custom_metadata": None,
                                "deletion_time": "",
                                "destroyed": False,
                                "version": stub.versions[key],
                            },
                        },
                        "wrap_info": None,
                        "warnings": None,
                        "auth": None,
                    },
                )

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def put(self, mount: str, path: str, data: dict) -> None:
        """Write a new version of a secret."""
        self.secrets[(mount, path)] = dict(data)
        self.versions[(mount, path)] = self.versions.get((mount, path), 0) + 1

    def __enter__(self) -> VaultStub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
