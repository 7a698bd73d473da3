"""The settings of the audit app and their defaults, read when used (so tests can override them).

A settings module (or, for the ones ``config/settings/base.py`` reads, the environment variable
of the same name, see ``.env.example``) overrides a default; ``audit/checks.py`` refuses unsafe
values.
"""

from __future__ import annotations

from core.settings import AppSettings

DEFAULTS = {
    # Legacy chain key: only verifies MACs made before the audit_chain ring; empty: var/secrets' file, if any.
    "AUDIT_CHAIN_KEY": "",
    # When committed events are chained: "background" (per-process sealer), "inline" or "periodic" (task only).
    "AUDIT_SEAL_MODE": "background",
    # Events chained per sealing transaction (events).
    "AUDIT_SEAL_BATCH_SIZE": 1000,
    # audit_verify warns about events still unsealed after this long (seconds).
    "AUDIT_SEAL_GRACE_SECONDS": 60,
    # Folder of the published heads (heads.log) and the archives (archive/); empty: VAR_DIR/audit (path).
    "AUDIT_DIR": "",
    # An event is kept this long before audit_archive archives and purges it (days).
    "AUDIT_RETENTION_DAYS": 365,
    # Per-action retention, e.g. {"auth.login_failed": 90} (action -> days).
    "AUDIT_RETENTION_OVERRIDES": {},
    # Events written per archive file by audit_archive (events).
    "AUDIT_ARCHIVE_BATCH_SIZE": 50000,
    # The audit admin counts at most this many matching events: no COUNT(*) over millions of rows (events).
    "AUDIT_ADMIN_COUNT_LIMIT": 10000,
    # The audit explorer records one audit.searched per distinct filter set per session in this
    # long: paging through one search is not a new search (seconds).
    "AUDIT_EXPLORER_SEARCH_RECORD_INTERVAL": 300,
    # Events an export reads from the database per fetch: memory stays bounded by it (events).
    "AUDIT_EXPORT_CHUNK_SIZE": 2000,
    # On SQLite a client IP range is matched as a list of addresses, so it may hold at most this
    # many; PostgreSQL compares inet values on the index and takes any range (addresses).
    "AUDIT_EXPLORER_SQLITE_RANGE_LIMIT": 4096,
    # Record each migration migrate applies or unapplies as a system.migration_applied event (switch).
    "AUDIT_RECORD_MIGRATIONS": True,
    # The sealer signs and publishes a checkpoint of the Merkle tree this often when it has grown;
    # 0: only on demand (manage.py audit_checkpoint) (seconds).
    "AUDIT_CHECKPOINT_INTERVAL": 60,
    # The checkpoints' origin line and signing key name: unique to this deployment, no spaces or
    # "+" (C2SP tlog-checkpoint) (text).
    "AUDIT_CHECKPOINT_ORIGIN": "ninaivalaigal.local/audit",
    # Where checkpoints are published: "file" (AUDIT_DIR/checkpoints.log), "witness" (AUDIT_WITNESS_URL),
    # "email" (AUDIT_CHECKPOINT_EMAIL_TO) (list).
    "AUDIT_CHECKPOINT_SINKS": ["file"],
    # Who receives each new checkpoint when the email sink is on: mailboxes off the host (list of addresses).
    "AUDIT_CHECKPOINT_EMAIL_TO": [],
    # The witness's base URL (audit/witness.py); it must run on another host to be worth having (URL).
    "AUDIT_WITNESS_URL": "",
    # How long a checkpoint submission to the witness may take (seconds).
    "AUDIT_WITNESS_TIMEOUT": 5.0,
    # A context key its action does not declare (audit/schema.py) raises in record() instead of
    # being kept and logged once (switch; the test settings turn it on).
    "AUDIT_STRICT_CONTEXT": False,
}
_settings = AppSettings(DEFAULTS)
get = _settings.get
