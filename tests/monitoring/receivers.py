"""Real local servers that receive our notifications: an HTTP webhook receiver and an SMTP server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from monitoring import webhooks


class WebhookReceiver:
    """An ``http.server`` in a thread that verifies each request's signature the documented way.

    Answers 204 to a verified request and 401 otherwise; keeps every request it saw. ``stop()``
    and ``start()`` again on the same port simulate an outage.
    """

    def __init__(self, *, secret: str, port: int):
        self.secret = secret
        self.port = port
        self.received: list[dict] = []
        self.status_override: int | None = None
        # When set, the first request is kept unanswered until ``release`` is set (a slow receiver).
        self.hold_first = False
        self.first_arrived = threading.Event()
        self.release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/security"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                verified = webhooks.verify_signature(
                    secret=receiver.secret,
                    timestamp=self.headers.get(webhooks.HEADER_TIMESTAMP),
                    body=body,
                    signature=self.headers.get(webhooks.HEADER_SIGNATURE),
                )
                receiver.received.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers.items()),
                        "body": body,
                        "json": json.loads(body) if verified else None,
                        "verified": verified,
                    }
                )
                if receiver.hold_first and len(receiver.received) == 1:
                    receiver.first_arrived.set()
                    receiver.release.wait(timeout=60)
                status = receiver.status_override or (204 if verified else 401)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    @property
    def verified(self) -> list[dict]:
        return [request for request in self.received if request["verified"]]


class _Mailbox:
    def __init__(self):
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


class SMTPServer:
    """aiosmtpd on a loopback port, collecting the envelopes it receives."""

    def __init__(self, *, port: int):
        self.mailbox = _Mailbox()
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=port)
        self.port = port

    def __enter__(self) -> SMTPServer:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()

    @property
    def messages(self) -> list:
        return self.mailbox.messages
