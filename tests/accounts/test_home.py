"""``/`` sends everyone where they expect to go, and the console's "View site" leads somewhere real."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from accounts.testing import login_with_mfa
from tests.accounts.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def test_a_visitor_signs_in_first_and_comes_back_to_the_account_page(client, user):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/?next=/"
    assert "no-cache" in response["Cache-Control"] or "no-store" in response["Cache-Control"]
    response = client.post("/accounts/login/?next=/", {"username": "alice", "password": PASSWORD, "next": "/"})
    assert response.status_code == 302 and response["Location"] == "/"
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/accounts/security/"
    assert client.get(response["Location"]).status_code == 200


def test_staff_go_to_the_console(staff_user):
    client = Client()
    login_with_mfa(client, staff_user)
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_only_reads_are_answered(client):
    assert client.post("/").status_code == 405


def test_the_consoles_view_site_link_opens_the_account_page(staff_user):
    client = Client()
    login_with_mfa(client, staff_user)
    html = client.get("/admin/").content.decode()
    [site_url] = re.findall(r'<a href="([^"]*)">View site</a>', html)
    assert site_url == "/accounts/security/"
    assert client.get(site_url).status_code == 200
