"""``manage.py audit_siem_export``: stream sealed audit events as OCSF or ECS JSON lines.

    manage.py audit_siem_export --format ocsf --output events.jsonl --cursor var/audit/siem.cursor
    manage.py audit_siem_export --format ecs --after 1200 --limit 500        # to standard output

With ``--cursor FILE`` the run starts after the sequence the file holds (none: from the start)
and saves the last sequence written after each flushed batch, so running it again (cron, a
systemd timer) exports only what is new: nothing repeated, nothing skipped. The output file is
appended to. Mapping: docs/siem.md.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from audit.siem import FORMATS, SyslogTlsOutput, siem_export

CURSOR_VERSION = 1


def read_cursor(path: Path, schema: str) -> int:
    """The sequence a cursor file holds (0 if it does not exist yet); a clear error if it is not ours."""
    if not path.exists():
        return 0
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        sequence, saved_schema = data["sequence"], data["schema"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CommandError(
            f"The cursor file {path} is not a cursor of audit_siem_export ({type(error).__name__})."
        ) from None
    if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 0:
        raise CommandError(f"The cursor file {path} holds no valid sequence.")
    if saved_schema != schema:
        raise CommandError(
            f"The cursor file {path} belongs to a {saved_schema} export, not {schema}: use another file."
        )
    return sequence


def write_cursor(path: Path, schema: str, sequence: int) -> None:
    """Replace the cursor file atomically (a crash leaves the old cursor or the new, never half a file)."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump({"version": CURSOR_VERSION, "schema": schema, "sequence": sequence}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class Command(BaseCommand):
    help = "Export sealed audit events as OCSF 1.x or Elastic ECS JSON lines, resumable by sequence."

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=FORMATS, required=True, help="ocsf or ecs")
        parser.add_argument("--output", default="-", help="file to append JSON lines to; - for standard output")
        parser.add_argument("--cursor", help="file holding the last exported sequence (read, then updated)")
        parser.add_argument("--after", type=int, help="export events after this sequence (instead of a cursor)")
        parser.add_argument("--limit", type=int, help="export at most this many events")
        parser.add_argument("--syslog", metavar="HOST:PORT", help="send RFC 5424 messages over TCP with TLS instead")
        parser.add_argument("--syslog-ca", metavar="FILE", help="CA certificates that sign the syslog server's")

    def handle(self, *args, **options):
        schema = options["format"]
        after, limit = options["after"], options["limit"]
        if after is not None and options["cursor"]:
            raise CommandError("Give either --after or --cursor, not both.")
        if after is not None and after < 0:
            raise CommandError("--after takes a sequence: 0 or more.")
        if limit is not None and limit < 1:
            raise CommandError("--limit takes a number of events: 1 or more.")
        cursor = Path(options["cursor"]) if options["cursor"] else None
        if cursor is not None:
            if not cursor.parent.is_dir():
                raise CommandError(f"The cursor's folder {cursor.parent} does not exist.")
            after = read_cursor(cursor, schema)
        after = after or 0

        def save(sequence: int) -> None:
            if cursor is not None:
                write_cursor(cursor, schema, sequence)

        if options["syslog"]:
            host, _, port = options["syslog"].rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise CommandError("--syslog takes HOST:PORT, for example siem.example.org:6514.")
            if options["syslog_ca"] and not Path(options["syslog_ca"]).is_file():
                raise CommandError(f"The CA file {options['syslog_ca']} does not exist.")
            try:
                sender = SyslogTlsOutput(host=host, port=int(port), schema=schema, cafile=options["syslog_ca"])
            except OSError as error:  # ssl.SSLError is an OSError
                raise CommandError(f"Cannot reach the syslog server {host}:{port} over TLS: {error}.") from None
            try:
                result = siem_export(output=sender, schema=schema, after_sequence=after, limit=limit, on_flush=save)
            except OSError as error:
                raise CommandError(f"The syslog server {host}:{port} stopped taking messages: {error}.") from None
            finally:
                sender.close()
        elif options["output"] == "-":
            result = siem_export(output=self.stdout, schema=schema, after_sequence=after, limit=limit, on_flush=save)
        else:
            path = Path(options["output"])
            if not path.parent.is_dir():
                raise CommandError(f"The output's folder {path.parent} does not exist.")
            try:
                with path.open("a", encoding="utf-8") as output:
                    result = siem_export(output=output, schema=schema, after_sequence=after, limit=limit, on_flush=save)
            except OSError as error:
                raise CommandError(f"Cannot write {path}: {error.strerror}.") from None
        self.stderr.write(
            f"Exported {result.exported} event(s) as {schema}"
            + (f", sequences {result.first_sequence}-{result.last_sequence}" if result.exported else "")
            + f"; cursor at {result.last_sequence}."
        )
