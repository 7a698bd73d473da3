"""Control characters are refused in every name, as in usernames and tags (pen-test finding).

Escape, bell, backspace, line breaks, DEL and the bidi overrides and isolates (U+202A-202E,
U+2066-2069) were accepted in context, organization and memory names: they rewrite terminals,
forge lines and make a name read differently (Trojan Source). The one rule is
``accounts.normalisation.contains_control_characters``; every entry point answers 400 naming
the field, and nothing is written.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from accounts.normalisation import CONTROL_CHARACTERS_MESSAGE
from api import services as api_services
from api.models import ApiKey
from memories import services
from memories.models import Context, Memory, Organization, Team
from tests.memories.api_helpers import assert_error, url

pytestmark = pytest.mark.django_db

CONTROLS = {
    "escape": "\x1b[2J",
    "bell": "\x07",
    "backspace": "\x08",
    "carriage return": "\r",
    "line feed": "\n",
    "delete": "\x7f",
    "right-to-left override": "\u202e",
    "left-to-right embedding": "\u202a",
    "first strong isolate": "\u2068",
    "pop directional isolate": "\u2069",
}


@pytest.fixture(params=list(CONTROLS.values()), ids=list(CONTROLS))
def control(request) -> str:
    return request.param


def test_a_context_name_with_a_control_character_is_a_400_and_nothing_is_written(world, client_for, control):
    before = Context.objects.count()
    response = client_for(world.owner).post(
        url("context-list"), {"name": f"Plans{control}txt.exe", "scope": "personal"}, format="json"
    )
    error = assert_error(response, 400, "invalid", fields={"name"})
    assert error["fields"]["name"] == [CONTROL_CHARACTERS_MESSAGE]
    assert Context.objects.count() == before


def test_renaming_a_context_to_a_name_with_a_control_character_is_a_400(world, client_for, control):
    response = client_for(world.owner).patch(
        url("context-detail", context_id=world.personal_context.pk), {"name": f"x{control}y"}, format="json"
    )
    assert_error(response, 400, "invalid", fields={"name"})
    assert Context.objects.get(pk=world.personal_context.pk).name == "Scratchpad"


def test_organization_and_team_names_refuse_control_characters(world, client_for, control):
    client = client_for(world.owner)
    assert_error(
        client.post(url("organization-list"), {"name": f"Evil{control}Corp", "slug": "evil"}, format="json"),
        400, "invalid", fields={"name"},
    )  # fmt: skip
    assert_error(
        client.post(
            url("team-list"),
            {"organization": world.organization.pk, "name": f"t{control}x", "slug": "t"},
            format="json",
        ),
        400, "invalid", fields={"name"},
    )  # fmt: skip
    assert not Organization.objects.filter(slug="evil").exists() and not Team.objects.filter(slug="t").exists()


def test_a_memory_source_refuses_control_characters(world, client_for, control):
    response = client_for(world.owner).post(
        url("memory-list"),
        {"context": world.personal_context.pk, "content": "fine", "source": f"cli{control}x"},
        format="json",
    )
    assert_error(response, 400, "invalid", fields={"source"})
    assert not Memory.objects.exists()


def test_the_services_refuse_them_for_every_other_caller(world, control):
    with pytest.raises(ValidationError) as raised:
        services.context_create(actor=world.owner, name=f"a{control}b", scope="personal")
    assert raised.value.message_dict == {"name": [CONTROL_CHARACTERS_MESSAGE]}
    with pytest.raises(ValidationError):
        services.organization_create(actor=world.owner, name=f"a{control}b", slug="ab")
    with pytest.raises(ValidationError) as raised:
        api_services.api_key_issue(
            actor=world.owner, owner=world.owner, name=f"ci{control}job", scopes=["memories:read"]
        )
    assert raised.value.message_dict == {"name": [CONTROL_CHARACTERS_MESSAGE]}
    assert not ApiKey.objects.exists()


def test_ordinary_unicode_names_are_still_accepted(world):
    context = services.context_create(actor=world.owner, name="Notizen für Café – 東京 🚀", scope="personal")
    assert context.name == "Notizen für Café – 東京 🚀"


def test_an_authenticator_name_refuses_them(world, control):
    from accounts.forms import DeviceNameForm
    from accounts.models import TOTPDevice
    from accounts.services import mfa

    form = DeviceNameForm({"name": f"Phone{control}x"})
    assert not form.is_valid() and form.errors["name"] == [CONTROL_CHARACTERS_MESSAGE]
    with pytest.raises(ValidationError):
        mfa.totp_device_create(actor=world.owner, user=world.owner, name=f"Phone{control}x")
    assert not TOTPDevice.objects.exists()
