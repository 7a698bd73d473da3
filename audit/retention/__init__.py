"""Retention: archive events past their retention period, verify the archive, then purge them.

``archive_file`` is the encrypted archive file, ``archive`` writes, reads and verifies archives
and their manifests, ``purge`` selects what is past retention and deletes it behind authenticated
tombstones, and ``services`` runs the three in turn (``audit_events_archive``). Why it works this
way: docs/decisions/audit-retention.md.
"""
