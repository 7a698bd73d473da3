"""Seed the platform for the detection backlog benchmark: a loading user and probe users.

    DJANGO_SETTINGS_MODULE=bench.detection_settings ... python -m bench.detection_seed PROBES

Each user gets a personal context, one 1 kB memory and an API key (the benchmark's own, made for
this throwaway database). Prints JSON.
"""

import json
import sys

import django


def _user(name: str) -> dict:
    from django.contrib.auth import get_user_model

    from api import services
    from api.scopes import SCOPES
    from bench.e2e_baseline.seed import content_of_size
    from memories.models import Context, Memory

    user = get_user_model().objects.create_user(username=name, password="bench-password-0123456789")
    context = Context.objects.create(name=name, scope="personal", owner_user=user, created_by=user)
    memory = Memory.objects.create(context=context, content=content_of_size(1024), author=user, source="cli")
    issued = services.api_key_issue(actor=user, owner=user, name=name, scopes=list(SCOPES))
    return {"username": name, "key": issued.key, "memory_id": memory.pk}


def main() -> None:
    django.setup()
    probes = int(sys.argv[1])
    print(json.dumps({"load": _user("loader"), "probes": [_user(f"probe-{number}") for number in range(probes)]}))


if __name__ == "__main__":
    main()
