"""The custom user: one account per normalised username and per case-insensitive email."""

from __future__ import annotations

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.test import RequestFactory

User = get_user_model()
PASSWORD = "correct horse battery staple 42"


@pytest.mark.django_db
@pytest.mark.parametrize("variant", ["alice", "ALICE", " alice ", "Alice\t", "ａｌｉｃｅ"])
def test_username_variants_are_one_account(variant):
    User.objects.create_user(username="Alice", email="alice@example.org", password=PASSWORD)
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create_user(username=variant, email="other@example.org", password=PASSWORD)
    request = RequestFactory().post("/admin/login/")
    assert authenticate(request, username=variant, password=PASSWORD).username == "alice"


@pytest.mark.django_db
def test_email_is_stored_lower_case_and_unique_case_insensitively():
    user = User.objects.create_user(username="bob", email=" Bob@Example.ORG ", password=PASSWORD)
    user.refresh_from_db()
    assert user.email == "bob@example.org"
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create_user(username="robert", email="BOB@example.org", password=PASSWORD)
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_users_without_email_do_not_collide():
    User.objects.create_user(username="svc-one", password=PASSWORD)
    User.objects.create_user(username="svc-two", password=PASSWORD)
    assert User.objects.filter(email="").count() == 2


@pytest.mark.django_db
def test_ensure_admin_creates_the_first_superuser_from_the_environment(monkeypatch, capsys):
    monkeypatch.setenv("ADMIN_USERNAME", "Root")
    monkeypatch.setenv("ADMIN_EMAIL", "root@example.org")
    monkeypatch.setenv("ADMIN_PASSWORD", PASSWORD)
    call_command("ensure_admin")
    admin = User.objects.get()
    assert (admin.username, admin.email, admin.is_superuser, admin.is_staff) == ("root", "root@example.org", True, True)
    assert admin.check_password(PASSWORD)
    assert PASSWORD not in capsys.readouterr().out
    call_command("ensure_admin")
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_ensure_admin_generates_a_password_shown_once(monkeypatch, capsys):
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)
    call_command("ensure_admin")
    generated = capsys.readouterr().out.strip().splitlines()[-1]
    assert User.objects.get().check_password(generated)
    call_command("ensure_admin")
    assert generated not in capsys.readouterr().out


@pytest.mark.django_db
def test_ensure_admin_refuses_a_weak_password_and_creates_nothing(monkeypatch):
    monkeypatch.setenv("ADMIN_PASSWORD", "12345")
    with pytest.raises(CommandError, match="ADMIN_PASSWORD is not acceptable"):
        call_command("ensure_admin")
    assert not User.objects.exists()
