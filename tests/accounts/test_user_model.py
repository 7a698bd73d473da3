"""The custom user: one account per normalised username and per case-insensitive email."""

from __future__ import annotations

import stat

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.test import RequestFactory

from core.emails import absolute_url

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


def _generated_password(output: str) -> str:
    lines = output.splitlines()
    header = next(index for index, line in enumerate(lines) if "with the password below" in line)
    return lines[header + 1].strip()


@pytest.fixture
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


@pytest.mark.django_db
def test_ensure_admin_generates_a_password_shown_once(monkeypatch, capsys, var_dir):
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)
    call_command("ensure_admin")
    output = capsys.readouterr().out
    generated = _generated_password(output)
    assert User.objects.get().check_password(generated)
    assert output.count(generated) == 1
    call_command("ensure_admin")
    assert generated not in capsys.readouterr().out


@pytest.mark.django_db
def test_the_generated_password_is_kept_in_a_private_file_and_shown_again_on_request(monkeypatch, capsys, var_dir):
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)
    call_command("ensure_admin")
    output = capsys.readouterr().out
    generated = _generated_password(output)
    path = var_dir / "secrets" / "first-admin-password"
    assert path.read_text() == generated + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert f"It is also in {path} (readable by you only)" in output
    # A later start names the file, never the password.
    call_command("ensure_admin")
    output = capsys.readouterr().out
    assert "Administrator exists: admin" in output and f"still in {path}" in output and generated not in output
    # The reminder, after the services' start-up output: the password once, and where it is.
    call_command("ensure_admin", "--remind")
    reminder = capsys.readouterr().out
    assert reminder.count(generated) == 1 and "First administrator 'admin'" in reminder and str(path) in reminder
    assert f"Sign in at {absolute_url('/admin/')}" in reminder


@pytest.mark.django_db
def test_the_file_goes_once_the_password_is_changed(monkeypatch, capsys, var_dir):
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)
    call_command("ensure_admin")
    capsys.readouterr()
    path = var_dir / "secrets" / "first-admin-password"
    admin = User.objects.get()
    admin.set_password(PASSWORD)
    admin.save()
    call_command("ensure_admin")  # the next start
    assert capsys.readouterr().out.strip() == "Administrator exists: admin"
    assert not path.exists()
    call_command("ensure_admin", "--remind")
    assert capsys.readouterr().out == ""


def test_make_run_asks_for_the_reminder_after_the_first_administrator_step():
    """README "After make run": the password is printed again once the services' output has scrolled by."""
    from pathlib import Path

    script = (Path(__file__).resolve().parent.parent.parent / "scripts" / "run.sh").read_text().splitlines()
    ensure = script.index("$py manage.py ensure_admin")
    assert "$py manage.py ensure_admin --remind --after 15 &" in script[ensure + 1 :]


@pytest.mark.django_db
def test_a_supplied_password_is_never_written_anywhere(monkeypatch, capsys, var_dir):
    monkeypatch.setenv("ADMIN_PASSWORD", PASSWORD)
    call_command("ensure_admin")
    call_command("ensure_admin", "--remind")
    assert PASSWORD not in capsys.readouterr().out
    assert not (var_dir / "secrets" / "first-admin-password").exists()


@pytest.mark.django_db
def test_ensure_admin_refuses_a_weak_password_and_creates_nothing(monkeypatch):
    monkeypatch.setenv("ADMIN_PASSWORD", "12345")
    with pytest.raises(CommandError, match="ADMIN_PASSWORD is not acceptable"):
        call_command("ensure_admin")
    assert not User.objects.exists()


def test_the_reminder_waits_and_a_ctrl_c_before_it_ends_it_quietly(tmp_path):
    """``make run`` starts ``ensure_admin --remind --after 15`` in the background; Ctrl-C stops everything."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    project = Path(__file__).resolve().parent.parent.parent
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "TEST_VAR_DIR": str(tmp_path)}
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "ensure_admin", "--remind", "--after", "60", "-v", "2"],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    seen = []
    while not any("Reminder in 60 s." in line for line in seen):  # the command now sleeps
        line = process.stderr.readline()
        assert line, "".join(seen)
        seen.append(line)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert time.monotonic() - started < 30
    assert "Traceback" not in err and "KeyboardInterrupt" not in err and out == ""
