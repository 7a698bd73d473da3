"""A password hasher that counts its work: Django's MD5 hasher, with every ``encode`` counted.

Installed by ``tests/accounts/test_pentest_findings.py`` through ``PASSWORD_HASHERS`` to show
that two paths make the same number of hashes (the expensive part of a sign-up).
"""

from __future__ import annotations

from django.contrib.auth.hashers import MD5PasswordHasher

CALLS: list[str] = []


class CountingMD5PasswordHasher(MD5PasswordHasher):
    algorithm = "counting_md5"

    def encode(self, password, salt):
        CALLS.append("encode")
        return super().encode(password, salt)

    def verify(self, password, encoded):
        CALLS.append("verify")
        return super().verify(password, encoded)
