"""Seed the platform for the load test: the simulated people, each with what its traffic needs.

    DJANGO_SETTINGS_MODULE=config.settings.production ... python -m bench.load_seed USERS ADMINS FILE

Run by bench/load_bench.py after ``manage.py migrate``, on the benchmark's own throwaway database.
Writes FILE (mode 0600; the benchmark deletes it with its work folder): for every simulated user a
username, password, the hex of a confirmed authenticator's key, an API key with its signing secret,
a personal context with a few memories, and the client IP its requests come from (through the one
trusted proxy: ``X-Forwarded-For``). ADMINS staff users with an authenticator may view the console's
dashboard, alerts and audit events (a group of view permissions: no privileged group or flag beyond
staff). One more account, ``load-victim``, is the target of the scripted brute-force burst. Prints
one JSON line in the shape ``bench/e2e_bench.py`` reads (the first user's key, memory and context).
"""

from __future__ import annotations

import binascii
import json
import os
import sys

import django

PASSWORD = "load-password-0123456789"  # the benchmark's own throwaway accounts
MEMORIES_PER_USER = 5
VICTIM = "load-victim"


def client_ip(number: int) -> str:
    """A distinct documentation-range address per simulated user (RFC 5737 TEST-NET-2, then -3)."""
    block, host = divmod(number, 250)
    return f"198.51.{100 + block}.{host + 1}" if block < 100 else f"203.0.{block - 100}.{host + 1}"


def main() -> None:
    users_wanted, admins_wanted, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group, Permission

    from accounts import totp
    from accounts.models import TOTPDevice
    from api import services
    from api.scopes import SCOPES
    from bench.e2e_baseline.seed import content_of_size
    from memories.models import Context, Memory

    model = get_user_model()
    password_hash = make_password(PASSWORD)  # one Argon2id hash for every account: seeding stays fast
    viewers, _ = Group.objects.get_or_create(name="Load console viewers")
    viewers.permissions.set(
        Permission.objects.filter(content_type__app_label__in=["audit", "monitoring"], codename__startswith="view_")
    )
    people = []

    def person(username: str, number: int, *, staff: bool) -> dict:
        user = model.objects.create_user(username=username, email=f"{username}@example.org", is_staff=staff)
        user.password = password_hash
        user.save(update_fields=["password"])
        key = totp.new_key()
        TOTPDevice.objects.create(user=user, name="Phone", confirmed=True, key=binascii.hexlify(key).decode())
        return {"username": username, "password": PASSWORD, "totp_key": binascii.hexlify(key).decode(),
                "ip": client_ip(number), "user": user}  # fmt: skip

    for number in range(users_wanted):
        entry = person(f"load-{number:04d}", number, staff=False)
        user = entry.pop("user")
        context = Context.objects.create(name="Notes", scope="personal", owner_user=user, created_by=user)
        memories = Memory.objects.bulk_create(
            [Memory(context=context, content=content_of_size(1024), author=user, source="cli")
             for _ in range(MEMORIES_PER_USER)]
        )  # fmt: skip
        issued = services.api_key_issue(actor=user, owner=user, name="load", scopes=list(SCOPES))
        entry |= {"key": issued.key, "signing_secret": issued.signing_secret, "context_id": context.pk,
                  "memory_ids": [memory.pk for memory in memories], "staff": False}  # fmt: skip
        people.append(entry)
    for number in range(admins_wanted):
        entry = person(f"load-admin-{number:02d}", 9000 + number, staff=True)
        entry.pop("user").groups.add(viewers)
        people.append(entry | {"staff": True})
    victim = model.objects.create_user(username=VICTIM, email=f"{VICTIM}@example.org")
    victim.password = password_hash
    victim.save(update_fields=["password"])
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as output:
        json.dump({"users": people, "victim": VICTIM}, output)
    first = people[0]
    print(json.dumps({"key": first["key"], "memory_id": first["memory_ids"][0], "context_id": first["context_id"]}))


if __name__ == "__main__":
    main()
