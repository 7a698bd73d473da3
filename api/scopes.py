"""The scopes an API key can carry. A scope narrows a key; it never grants more than its user has."""

from __future__ import annotations

SCOPES: dict[str, str] = {
    "memories:read": "Read and list memories, export contexts.",
    "memories:write": "Create, change and delete memories.",
    "contexts:read": "See contexts and who they are shared with.",
    "contexts:write": "Create, rename and delete contexts.",
    "contexts:share": "Share, unshare and transfer contexts.",
    "organizations:read": "See organizations, teams and their members.",
    "organizations:write": "Create organizations and teams; add, remove and change the roles of members.",
    "audit:read": "Read audit events about yourself (reserved for the audit API).",
}

SCOPE_CHOICES = [(name, f"{name} — {description}") for name, description in SCOPES.items()]


def unknown_scopes(scopes) -> list[str]:
    """The members of ``scopes`` that are not scopes."""
    return sorted(str(scope) for scope in scopes if scope not in SCOPES)
