"""Create the baseline's tables and one owner, key, context and 1 kB memory; print them as JSON.

DJANGO_SETTINGS_MODULE=bench.e2e_baseline.settings DATABASE_URL=... python -m bench.e2e_baseline.seed KEY
"""

import hashlib
import json
import sys

import django


def main() -> None:
    django.setup()
    from django.core.management import call_command

    from bench.e2e_baseline.models import Context, Key, Memory, MemoryTag, Owner

    call_command("migrate", run_syncdb=True, verbosity=0)
    key = sys.argv[1]
    owner = Owner.objects.create(username="bench")
    Key.objects.create(digest=hashlib.sha256(key.encode()).hexdigest(), owner=owner)
    context = Context.objects.create(name="Bench", owner=owner)
    memory = Memory.objects.create(context=context, author=owner, content=content_of_size(1024), source="cli")
    MemoryTag.objects.bulk_create([MemoryTag(memory=memory, name=name) for name in ("db", "deploy", "ops")])
    print(json.dumps({"memory_id": memory.pk, "context_id": context.pk}))


def content_of_size(size: int) -> str:
    return ("a memory of moderate length; " * (size // 29 + 1))[:size]


if __name__ == "__main__":
    main()
