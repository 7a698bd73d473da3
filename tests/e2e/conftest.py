"""Fixtures of the real-browser tests: Debian's Chromium driven by Playwright's sync API."""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
    # synchronous and safe, so Django's async-safety guard is relaxed for the browser tests only.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    # An earlier test of the run can leave this thread marked as running an event loop, which
    # Playwright's sync API refuses; no loop runs here between tests, so the mark is cleared.
    if asyncio.events._get_running_loop() is not None:
        asyncio.events._set_running_loop(None)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def mail_dir(settings, tmp_path):
    """Emails are written by Django's file backend into this folder."""
    folder = tmp_path / "mail"
    folder.mkdir()
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(folder)
    return folder
