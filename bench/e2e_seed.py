"""Seed the platform for the end-to-end benchmark: one user, context, 1 kB memory and API key.

    DJANGO_SETTINGS_MODULE=config.settings.production ... python -m bench.e2e_seed

Run by bench/e2e_bench.py after ``manage.py migrate``; prints JSON (the key is the benchmark's own,
made for this throwaway database).
"""

import json

import django


def main() -> None:
    django.setup()
    from django.contrib.auth import get_user_model

    from api import services
    from api.scopes import SCOPES
    from bench.e2e_baseline.seed import content_of_size
    from memories.models import Context, Memory, MemoryTag

    user = get_user_model().objects.create_user(username="bench", password="bench-password-0123456789")
    context = Context.objects.create(name="Bench", scope="personal", owner_user=user, created_by=user)
    memory = Memory.objects.create(context=context, content=content_of_size(1024), author=user, source="cli")
    MemoryTag.objects.bulk_create([MemoryTag(memory=memory, name=name) for name in ("db", "deploy", "ops")])
    issued = services.api_key_issue(actor=user, owner=user, name="bench", scopes=list(SCOPES))
    print(json.dumps({"key": issued.key, "memory_id": memory.pk, "context_id": context.pk}))


if __name__ == "__main__":
    main()
