"""The memories pages of the security console: they render, search and filter, and never show content."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.testing import login_with_mfa
from memories.models import (
    Context,
    ContextShare,
    ContextTransferOffer,
    Membership,
    Memory,
    MemoryTag,
    Organization,
    Team,
)

pytestmark = pytest.mark.django_db

SECRET = "the launch code is 0000"
MODELS = [Organization, Team, Membership, Context, ContextShare, ContextTransferOffer, Memory, MemoryTag]


@pytest.fixture
def console(world, make_memory, make_share, make_user) -> Client:
    memory = make_memory(world.team_context, content=SECRET, tags=["ops"], author=world.owner,
                         metadata={"secret": SECRET})
    make_share(world.team_context, permission="read", user=make_user(), granted_by=world.owner)
    ContextTransferOffer.objects.create(
        context=world.team_context,
        sender=world.owner,
        recipient=make_user(username="offer.recipient"),
        expires_at=timezone.now() + datetime.timedelta(days=7),
    )
    assert memory.pk
    superuser = get_user_model().objects.create_superuser("root.admin", "root@example.test", "x-long-passphrase-1")
    client = Client()
    login_with_mfa(client, superuser)  # the console refuses sessions that have not passed MFA
    return client


def _admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:memories_{model._meta.model_name}_{view}", args=args)


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
def test_changelist_search_and_change_page_render(console, model):
    for params in ({}, {"q": "ops"}, {"q": "acme"}):
        response = console.get(_admin_url(model, "changelist"), params)
        assert response.status_code == 200, (model, params)
        assert SECRET not in response.content.decode()
    response = console.get(_admin_url(model, "change", model.objects.first().pk))
    assert response.status_code == 200
    assert SECRET not in response.content.decode()


def test_memories_are_view_only_in_the_console(console):
    memory = Memory.objects.get()
    assert console.get(_admin_url(Memory, "add")).status_code == 403
    assert console.post(_admin_url(Memory, "delete", memory.pk), {"post": "yes"}).status_code == 403
    assert console.post(_admin_url(Memory, "change", memory.pk), {"kind": "command"}).status_code == 403
    memory.refresh_from_db()
    assert memory.kind == "note"


def test_transfer_offers_are_view_only_and_shown_on_their_context(console, world):
    offer = ContextTransferOffer.objects.get()
    assert console.get(_admin_url(ContextTransferOffer, "add")).status_code == 403
    assert console.post(_admin_url(ContextTransferOffer, "delete", offer.pk), {"post": "yes"}).status_code == 403
    changed = console.post(_admin_url(ContextTransferOffer, "change", offer.pk), {"status": "accepted"})
    assert changed.status_code == 403
    offer.refresh_from_db()
    assert offer.status == "pending"
    listed = console.get(_admin_url(ContextTransferOffer, "changelist"), {"status__exact": "pending"})
    assert "offer.recipient" in listed.content.decode()
    page = console.get(_admin_url(Context, "change", world.team_context.pk)).content.decode()
    assert "transfer offer" in page.lower() and "offer.recipient" in page
    assert "Pending" in page


def test_the_console_refuses_a_context_whose_owner_does_not_match_its_scope(console, world):
    context = world.team_context
    response = console.post(
        _admin_url(Context, "change", context.pk),
        {
            "name": context.name,
            "scope": "personal",
            "owner_team": context.owner_team_id,
            "shares-TOTAL_FORMS": "0",
            "shares-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200  # the form again, with the error
    assert "exactly one owner" in response.content.decode()
    context.refresh_from_db()
    assert context.scope == "team"
