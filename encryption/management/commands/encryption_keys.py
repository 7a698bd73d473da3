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
from encryption.selectors import (
    COUNTED_PURPOSES,
    LEGACY_FERNET_KEY_ID,
    NOT_A_TOKEN,
    encryption_key_dependents,
    encryption_key_usage,
)
from encryption.services import KeyRetirementError, encryption_key_retire


class Command(BaseCommand):
    help = (
        "generate: print a new key (id:BASE64) once; it is not stored or logged anywhere. "
        "status: per purpose, each key id, how many stored values it still protects and which backups and audit "
        "archives still need it. retire PURPOSE KEY_ID [--force]: retire a key nothing needs any more."
    )

    def add_arguments(self, parser):
        subcommands = parser.add_subparsers(dest="subcommand", required=True)
        generate = subcommands.add_parser("generate", help="Print a new 32-byte key as id:BASE64.")
        generate.add_argument("--id", dest="key_id", help="Key id (default: today's date and random hex).")
        status = subcommands.add_parser("status", help="Show key ids and the rows each key protects.")
        status.add_argument("--purpose", choices=PURPOSES, action="append", help="Only this purpose (repeatable).")
        status.add_argument("--json", action="store_true", help="Machine-readable output.")
        retire = subcommands.add_parser(
            "retire", help="Retire an older key: refused while rows, backups or archives still need it."
        )
        retire.add_argument("purpose", choices=PURPOSES)
        retire.add_argument("key_id")
        retire.add_argument(
            "--force", action="store_true", help="Retire it although something still needs it (recorded as forced)."
        )

    def handle(self, *args, subcommand, **options):
        if subcommand == "generate":
            return self._generate(options.get("key_id"))
        if subcommand == "retire":
            return self._retire(options["purpose"], options["key_id"], force=options["force"])
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

    def _retire(self, purpose: str, key_id: str, *, force: bool) -> None:
        try:
            retirement = encryption_key_retire(purpose=purpose, key_id=key_id, force=force)
        except (KeyRetirementError, KeyConfigurationError) as error:
            raise CommandError(str(error)) from None
        if retirement.forced:
            self.stderr.write(
                self.style.WARNING(
                    f"Forced: {retirement.rows} stored values and {retirement.dependents.describe() or 'nothing else'} "
                    "needed this key and can no longer be read without it."
                )
            )
        if retirement.removed_from_provider:
            self.stdout.write(self.style.SUCCESS(f"Retired {purpose} key {key_id}: removed from its key-ring file."))
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Retired {purpose} key {key_id}: remove it from the {provider_name()} provider's {purpose} "
                    "ring now (and restart or wait ENCRYPTION_KEY_CACHE_SECONDS)."
                )
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
            dependents = encryption_key_dependents(purpose=purpose)
            entry["needed_by"] = {
                key_id: {"backups": needs.backups, "archives": needs.archives, "audit_events": needs.audit_events}
                for key_id, needs in sorted(dependents.items())
            }
            entry["descriptions"] = {key_id: needs.describe() for key_id, needs in dependents.items() if needs}
            if purpose in COUNTED_PURPOSES:
                usage = encryption_key_usage(purpose=purpose)
                entry["rows"] = dict(usage.totals)
                entry["columns"] = {column: dict(counter) for column, counter in usage.by_column.items()}
                entry["retirable"] = [key_id for key_id in usage.retirable() if not dependents.get(key_id)]
                # Rows under a key id the ring no longer holds cannot be read until it comes back.
                entry["unreadable"] = {
                    key_id: count
                    for key_id, count in usage.totals.items()
                    if key_id not in ring and key_id not in (LEGACY_FERNET_KEY_ID, NOT_A_TOKEN)
                }
            report["purposes"][purpose] = entry
        if as_json:
            for entry in report["purposes"].values():
                entry.pop("descriptions", None)
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
                needed_by = entry["descriptions"].get(key_id)
                if rows is not None and key_id in entry.get("retirable", []):
                    hint = "  <- no rows left: may be removed"
                elif needed_by and key_id != entry["primary"]:
                    hint = "  <- still needed: keep it"
                self.stdout.write(f"  {key_id:<40} {role:<20}{count}{hint}")
                if needed_by:
                    self.stdout.write(f"    needed by {needed_by}")
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
