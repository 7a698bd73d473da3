"""System checks that refuse an unsafe audit configuration (run by ``manage.py check``)."""

from __future__ import annotations

from django.core.checks import Error, Tags, register

from audit import conf
from audit.chain import KEY_PURPOSE, LEGACY_KEY_ID
from audit.retention.purge import valid_retention_overrides
from audit.sealing import SEAL_MODES
from core import conf as core_conf
from encryption.errors import KeyConfigurationError
from encryption.keyring import load_key_ring


@register(Tags.security)
def check_audit_settings(app_configs=None, **kwargs):
    """Refuse a short legacy chain key, a ring key with the reserved id, and bad sealing or retention settings."""
    messages = []
    key = conf.get("AUDIT_CHAIN_KEY") or ""
    if key and len(key) < 32:
        messages.append(
            Error(
                "AUDIT_CHAIN_KEY (the legacy audit chain key) is shorter than 32 characters.",
                hint="It only verifies events made before the audit_chain key ring; it was never valid this short.",
                id="audit.E001",
            )
        )
    try:
        ring = load_key_ring(KEY_PURPOSE)
    except KeyConfigurationError:
        ring = None  # encryption.checks reports a missing or malformed ring
    if ring is not None and LEGACY_KEY_ID in ring:
        messages.append(
            Error(
                f"The {KEY_PURPOSE} key ring has a key with the id {LEGACY_KEY_ID!r}, which names AUDIT_CHAIN_KEY.",
                hint="Give that key another id (MACs are stored with the id of the key that made them).",
                id="audit.E007",
            )
        )
    if conf.get("AUDIT_SEAL_MODE") not in SEAL_MODES:
        messages.append(Error(f"AUDIT_SEAL_MODE must be one of {', '.join(SEAL_MODES)}.", id="audit.E002"))
    if core_conf.get("AUDIT_TRUSTED_PROXY_COUNT") < 0:
        messages.append(Error("AUDIT_TRUSTED_PROXY_COUNT cannot be negative.", id="audit.E003"))
    if conf.get("AUDIT_RETENTION_DAYS") < 1:
        messages.append(Error("AUDIT_RETENTION_DAYS must be at least 1.", id="audit.E004"))
    for problem in valid_retention_overrides(conf.get("AUDIT_RETENTION_OVERRIDES")):
        messages.append(Error(problem, id="audit.E005"))
    if conf.get("AUDIT_SEAL_BATCH_SIZE") < 1 or conf.get("AUDIT_ARCHIVE_BATCH_SIZE") < 1:
        messages.append(Error("AUDIT_SEAL_BATCH_SIZE and AUDIT_ARCHIVE_BATCH_SIZE must be positive.", id="audit.E006"))
    messages.extend(_checkpoint_problems())
    return messages


def _checkpoint_problems() -> list[Error]:
    """The checkpoint settings: an origin the signed-note format allows, known sinks, a witness URL if used."""
    from audit.checkpoints import SINKS

    messages = []
    origin = str(conf.get("AUDIT_CHECKPOINT_ORIGIN") or "")
    if not origin or any(character.isspace() or character == "+" for character in origin):
        messages.append(
            Error(
                "AUDIT_CHECKPOINT_ORIGIN must be non-empty, without spaces or '+' (C2SP signed-note key name).",
                hint="For example console.example.org/audit: unique to this deployment.",
                id="audit.E008",
            )
        )
    sinks = conf.get("AUDIT_CHECKPOINT_SINKS") or []
    unknown = [sink for sink in sinks if sink not in SINKS]
    if unknown:
        messages.append(
            Error(f"AUDIT_CHECKPOINT_SINKS: unknown sink(s) {', '.join(map(str, unknown))}.", id="audit.E009")
        )
    url = str(conf.get("AUDIT_WITNESS_URL") or "")
    if "witness" in sinks and not url.startswith(("https://", "http://")):
        messages.append(
            Error(
                "AUDIT_CHECKPOINT_SINKS names the witness but AUDIT_WITNESS_URL is not an http(s) URL.", id="audit.E010"
            )
        )
    recipients = [address for address in conf.get("AUDIT_CHECKPOINT_EMAIL_TO") or [] if "@" in str(address)]
    if "email" in sinks and not recipients:
        messages.append(
            Error(
                "AUDIT_CHECKPOINT_SINKS names email but AUDIT_CHECKPOINT_EMAIL_TO holds no address.", id="audit.E012"
            )
        )
    if conf.get("AUDIT_CHECKPOINT_INTERVAL") < 0:
        messages.append(Error("AUDIT_CHECKPOINT_INTERVAL cannot be negative (0: only on demand).", id="audit.E011"))
    return messages
