"""``manage.py encryption_keys generate|status``: make a key; show which keys still protect rows."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from encryption.errors import KeyConfigurationError
from encryption.keyring import (
    KEY_ID_PATTERN,
    PURPOSES,
    format_key,
    generate_key_material,
    get_key_ring,
    new_key_id,
    provider_name,
)
from encryption.selectors import COUNTED_PURPOSES, LEGACY_FERNET_KEY_ID, NOT_A_TOKEN, encryption_key_usage


class Command(BaseCommand):
    help = (
        "generate: print a new key (id:BASE64) once; it is not stored or logged anywhere. "
        "status: per purpose, each key id and how many stored values it still protects."
    )

    def add_arguments(self, parser):
        subcommands = parser.add_subparsers(dest="subcommand", required=True)
        generate = subcommands.add_parser("generate", help="Print a new 32-byte key as id:BASE64.")
        generate.add_argument("--id", dest="key_id", help="Key id (default: today's date and random hex).")
        status = subcommands.add_parser("status", help="Show key ids and the rows each key protects.")
        status.add_argument("--purpose", choices=PURPOSES, action="append", help="Only this purpose (repeatable).")
        status.add_argument("--json", action="store_true", help="Machine-readable output.")

    def handle(self, *args, subcommand, **options):
        if subcommand == "generate":
            return self._generate(options.get("key_id"))
        return self._status(options.get("purpose") or list(PURPOSES), as_json=options["json"])

    def _generate(self, key_id: str | None) -> None:
        key_id = key_id or new_key_id()
        if not KEY_ID_PATTERN.fullmatch(key_id):
            raise CommandError("A key id is 1 to 64 letters, digits, '-' or '_'.")
        # The key goes to standard output once, and nowhere else (no log line, no file).
        self.stdout.write(format_key(key_id, generate_key_material()))
        self.stderr.write(
            "Shown once, stored nowhere. Put it first in the purpose's key ring to make it the primary key, "
            "then run `manage.py rotate_encryption_keys`."
        )

    def _status(self, purposes: list[str], *, as_json: bool) -> None:
        report = {"provider": provider_name(), "purposes": {}}
        failed = False
        for purpose in purposes:
            try:
                ring = get_key_ring(purpose)
            except KeyConfigurationError as error:
                report["purposes"][purpose] = {"error": str(error)}
                failed = True
                continue
            entry = {"keys": ring.ids, "primary": ring.primary.id}
            if purpose in COUNTED_PURPOSES:
                usage = encryption_key_usage(purpose=purpose)
                entry["rows"] = dict(usage.totals)
                entry["columns"] = {column: dict(counter) for column, counter in usage.by_column.items()}
                entry["retirable"] = usage.retirable()
                # Rows under a key id the ring no longer holds cannot be read until it comes back.
                entry["unreadable"] = {
                    key_id: count
                    for key_id, count in usage.totals.items()
                    if key_id not in ring and key_id not in (LEGACY_FERNET_KEY_ID, NOT_A_TOKEN)
                }
            report["purposes"][purpose] = entry
        if as_json:
            self.stdout.write(json.dumps(report, indent=2, sort_keys=True))
        else:
            self._print(report)
        if failed:
            raise CommandError("Some key rings could not be resolved (see above).")

    def _print(self, report: dict) -> None:
        self.stdout.write(f"Key provider: {report['provider']}")
        for purpose, entry in report["purposes"].items():
            self.stdout.write("")
            self.stdout.write(self.style.MIGRATE_HEADING(f"{purpose}"))
            if "error" in entry:
                self.stdout.write(self.style.ERROR(f"  {entry['error']}"))
                continue
            rows = entry.get("rows")
            for key_id in entry["keys"]:
                role = "primary" if key_id == entry["primary"] else "older (reads only)"
                count = "" if rows is None else f"{rows.get(key_id, 0):>10} rows"
                hint = ""
                if rows is not None and key_id in entry.get("retirable", []):
                    hint = "  <- no rows left: may be removed"
                self.stdout.write(f"  {key_id:<40} {role:<20}{count}{hint}")
            if rows is None:
                self.stdout.write("  (rows are not counted for this purpose here)")
                continue
            for key_id, count in sorted(rows.items()):
                if key_id in entry["keys"]:
                    continue
                if key_id == LEGACY_FERNET_KEY_ID:
                    label = "legacy Fernet (rotate to convert)"
                elif key_id == NOT_A_TOKEN:
                    label = "NOT ENCRYPTED / unrecognised"
                else:
                    label = "NOT IN THE RING: unreadable"
                self.stdout.write(self.style.WARNING(f"  {key_id:<40} {label:<20}{count:>10} rows"))
            for column, counter in sorted(entry["columns"].items()):
                parts = ", ".join(f"{key_id}: {count}" for key_id, count in sorted(counter.items())) or "no values"
                self.stdout.write(f"    {column}: {parts}")
