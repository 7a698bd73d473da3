"""A tiny checkpoint witness: remembers the audit log's checkpoints and refuses to go back.

Run it on another host than the platform (no Django; the standard library and ``cryptography``)::

    python audit/witness.py --key "$(manage.py audit_checkpoint --public-key)" --state /var/lib/witness \\
        --host 0.0.0.0 --port 8480

and set ``AUDIT_WITNESS_URL`` (and ``AUDIT_CHECKPOINT_SINKS=file,witness``) on the platform. Put it
behind TLS for anything but a private network.

It speaks the ``add-checkpoint`` request of C2SP tlog-witness. ``POST /add-checkpoint`` with the
body::

    old <size the submitter believes the witness holds>
    <consistency proof hash, base64>   (one line each, none from size 0)

    <the signed checkpoint note>

answers 200 when the checkpoint is signed by a configured key and extends the one held (RFC 9162
§2.1.4 consistency proof), and then stores it; 409 with the held size as the body
(``text/x.tlog.size``) when ``old`` is not that size; 422 when the proof does not prove
consistency; 403 when no configured key signed it; 400 for a malformed request. A checkpoint of a
later *epoch* (``epoch N`` line: the log was restored and reconciled) is accepted only as that
epoch's empty tree, from ``old 0``, with a ``previous`` line naming exactly the checkpoint held, so
the abandoned tail stays on this witness's record; an older epoch is refused (422). ``GET
/checkpoint`` returns the latest checkpoint held (404 before the first). Accepted checkpoints are
appended to ``<state>/checkpoints.log``, read back at start. The witness holds only public keys.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and sys.path and sys.path[0]:
    # Run as a script from the repository, this file's folder would come first on the path and its
    # neighbours (audit/selectors.py, audit/signals.py) would shadow the standard library's modules.
    import os.path

    if os.path.samefile(sys.path[0], os.path.dirname(os.path.abspath(__file__))):
        _script_folder = sys.path.pop(0)

import argparse
import base64
import contextlib
import json
import os
import threading
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

if __name__ == "__main__":  # a script: its neighbour, by path
    import importlib.util

    _spec = importlib.util.spec_from_file_location(
        "offline_verifier", os.path.join(os.path.dirname(os.path.abspath(__file__)), "offline_verifier.py")
    )
    tlog = sys.modules["offline_verifier"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(tlog)
else:
    from audit import offline_verifier as tlog

MAX_BODY = 64 * 1024


class Witness:
    """The witness's state: the latest accepted checkpoint of the log, and the append-only file."""

    def __init__(self, *, verifiers: list[tlog.Verifier], state_dir: Path) -> None:
        self.verifiers = verifiers
        self.path = state_dir / "checkpoints.log"
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.lock = threading.Lock()
        self.latest: tlog.Checkpoint | None = None
        self.latest_note = ""
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    note = json.loads(line)["note"]
                    self.latest, self.latest_note = self.open(note), note

    def open(self, note: str) -> tlog.Checkpoint:
        problem: tlog.VerificationError | None = None
        for verifier in self.verifiers:
            try:
                return tlog.open_checkpoint(note, verifier)
            except tlog.VerificationError as error:
                problem = error
        raise problem or tlog.VerificationError("no key configured")

    def add(self, body: str) -> tuple[int, str, str]:
        """Handle an add-checkpoint body; return (status, content type, response body)."""
        head, separator, note = body.partition("\n\n")
        if not separator:
            return 400, "text/plain", "the request has no empty line before the checkpoint\n"
        lines = head.split("\n")
        if not lines[0].startswith("old ") or not lines[0][4:].isdigit():
            return 400, "text/plain", "the first line must be 'old <size>'\n"
        old_size = int(lines[0][4:])
        try:
            proof = [base64.b64decode(line, validate=True) for line in lines[1:]]
        except ValueError:
            return 400, "text/plain", "a proof line is not base64\n"
        try:
            checkpoint = self.open(note)
        except tlog.VerificationError as error:
            return 403, "text/plain", f"{error}\n"
        with self.lock:
            held = self.latest.size if self.latest else 0
            held_epoch = self.latest.epoch if self.latest else 1
            if checkpoint.epoch < held_epoch:
                return 422, "text/plain", f"epoch {checkpoint.epoch} is older than the epoch {held_epoch} held\n"
            if self.latest is not None and checkpoint.epoch > held_epoch:
                return self._new_epoch(checkpoint, note, old_size=old_size, proof=proof)
            if old_size != held:
                return 409, "text/x.tlog.size", f"{held}\n"
            if checkpoint.size < held:
                return 409, "text/x.tlog.size", f"{held}\n"
            old_root = self.latest.root if self.latest else tlog.EMPTY_ROOT
            try:
                tlog.verify_consistency(held, checkpoint.size, old_root, checkpoint.root, proof)
            except tlog.VerificationError as error:
                return 422, "text/plain", f"not consistent with the checkpoint held at {held}: {error}\n"
            if self.latest is not None and checkpoint.size == held:
                return 200, "text/plain", ""  # the same tree again (its proof was checked above)
            self._store(checkpoint, note)
        return 200, "text/plain", ""

    def _new_epoch(self, checkpoint: tlog.Checkpoint, note: str, *, old_size: int, proof: list[bytes]):
        """A checkpoint of a later epoch (the log was restored and reconciled): called with the lock held.

        Accepted only as the empty tree of the new epoch, from ``old 0``, whose ``previous`` line
        names exactly the checkpoint held: the log then says, signed, which tree it abandoned, and
        that admission stays in this witness's log. Anything else is answered with the size held.
        """
        named = checkpoint.previous_checkpoint()
        held = self.latest
        if checkpoint.size != 0 or old_size != 0 or proof or named is None:
            return 409, "text/x.tlog.size", f"{held.size}\n"
        if named != (held.epoch, held.size, held.root):
            return (
                422,
                "text/plain",
                (
                    f"the new epoch names epoch {named[0]} at {named[1]}, not the checkpoint held "
                    f"(epoch {held.epoch} at {held.size})\n"
                ),
            )
        if checkpoint.root != tlog.EMPTY_ROOT:
            return 422, "text/plain", "a new epoch starts from the empty tree\n"
        self._store(checkpoint, note)
        return 200, "text/plain", ""

    def _store(self, checkpoint: tlog.Checkpoint, note: str) -> None:
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            line = {"epoch": checkpoint.epoch, "tree_size": checkpoint.size, "note": note}
            os.write(descriptor, (json.dumps(line) + "\n").encode())
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        self.latest, self.latest_note = checkpoint, note

    def __call__(self, environ, start_response):
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/")
        if path == "/add-checkpoint" and method == "POST":
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = -1
            if not 0 < length <= MAX_BODY:
                status, content_type, text = 400, "text/plain", "a body of 1 to 65536 bytes is required\n"
            else:
                try:
                    body = environ["wsgi.input"].read(length).decode("utf-8")
                except UnicodeDecodeError:
                    status, content_type, text = 400, "text/plain", "the body is not UTF-8\n"
                else:
                    status, content_type, text = self.add(body)
        elif path == "/checkpoint" and method == "GET":
            with self.lock:
                note = self.latest_note
            status, content_type, text = (200, "text/plain", note) if note else (404, "text/plain", "none yet\n")
        else:
            status, content_type, text = 404, "text/plain", "not found\n"
        reasons = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 409: "Conflict"}
        reasons[422] = "Unprocessable Entity"
        encoded = text.encode("utf-8")
        start_response(
            f"{status} {reasons[status]}", [("Content-Type", content_type), ("Content-Length", str(len(encoded)))]
        )
        return [encoded]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        sys.stderr.write("witness: " + (format % args) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="witness.py", description="A checkpoint witness for the audit log.")
    parser.add_argument("--key", action="append", required=True, help="A verifier key of the log (repeatable).")
    parser.add_argument("--state", required=True, help="Folder of the witness's checkpoints.log.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8480)
    arguments = parser.parse_args(argv)
    try:
        verifiers = [tlog.parse_verifier_key(key) for key in arguments.key]
        witness = Witness(verifiers=verifiers, state_dir=Path(arguments.state))
    except (tlog.VerificationError, OSError, ValueError, KeyError) as error:
        print(f"witness: cannot start: {error}", file=sys.stderr)
        return 2
    with make_server(arguments.host, arguments.port, witness, handler_class=_QuietHandler) as server:
        print(f"witness: listening on {arguments.host}:{server.server_port}", file=sys.stderr, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
