"""The simulated people of the load test (bench/load_bench.py runs this with locust, headless).

Not imported by the benchmark or the tests: locust patches the standard library (gevent) on import.
The environment names the seeded people (``LOAD_USERS_FILE``, from bench/load_seed.py), where to
write the client-side ledger (``LOAD_LEDGER_FILE``), how many console users (``LOAD_ADMINS``) and
when the scripted brute-force burst starts (``LOAD_BURST_AFTER_SECONDS``).

Every simulated person comes from its own client IP through the one trusted proxy (the benchmark
starts the platform with ``AUDIT_TRUSTED_PROXY_COUNT=1``): ``X-Forwarded-For`` and
``X-Forwarded-Proto: https``, as a TLS-terminating reverse proxy sends them.

* ``ApiUser`` (most): reads one of its memories (``GET /api/v2/memories/ID/``), writes one
  (``POST /api/v2/memories/``), deletes one it wrote with a signed ``DELETE``, and now and then
  signs in through the real login page with its password and a fresh TOTP code (RFC 6238; one
  sign-in per 30-second step at most, as a code is accepted once).
* ``ConsoleUser`` (``LOAD_ADMINS``): a staff user who signs in with TOTP and views the security
  dashboard, the alert list and the audit event list.
* ``Attacker`` (one): after ``LOAD_BURST_AFTER_SECONDS``, ``BURST_ATTEMPTS`` wrong passwords against
  ``load-victim`` from as many addresses (one each: no address reaches the per-address lockout), so
  exactly one brute-force alert is due; then nothing.

The ledger counts, per kind, the operations that completed as expected (every step with the status
it should have) and every unexpected status; bench/load_bench.py turns it into expected audit events.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import os
import random
import re
import struct
import time
from collections import Counter, defaultdict

from locust import HttpUser, between, constant, events, task

from api.client import signature_headers

BURST_ATTEMPTS = 10  # MONITORING_BRUTE_FORCE_THRESHOLD's default: the burst crosses it exactly once
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
CONTENT = "load " * 100  # 500 bytes

_people = json.loads(open(os.environ["LOAD_USERS_FILE"]).read())  # noqa: SIM115 - read once at import
_api_people = itertools.cycle([entry for entry in _people["users"] if not entry["staff"]])
_console_people = itertools.cycle([entry for entry in _people["users"] if entry["staff"]])
VICTIM = _people["victim"]
LEDGER: dict[str, dict] = defaultdict(lambda: {"ok": 0, "unexpected": Counter()})
KEYS_USED: set[str] = set()  # the people whose key completed at least one request
_started_at = time.monotonic()


def totp_code(key_hex: str, step: int) -> str:
    """RFC 6238 TOTP (RFC 4226 HOTP with HMAC-SHA-1, 6 digits) at time step ``step``."""
    digest = hmac.new(bytes.fromhex(key_hex), struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(number % 1_000_000).zfill(6)


class Unexpected(Exception):
    """A step answered with a status other than the one it should have (recorded in the ledger)."""


def _expect(kind: str, response, *statuses: int):
    if response.status_code not in statuses:
        LEDGER[kind]["unexpected"][str(response.status_code)] += 1
        response.failure(f"{kind}: status {response.status_code}, expected {statuses}")
        raise Unexpected(kind)
    response.success()
    return response


class Person(HttpUser):
    abstract = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cookies: dict[str, str] = {}

    def proxy_headers(self) -> dict:
        return {"X-Forwarded-For": self.person["ip"], "X-Forwarded-Proto": "https"}

    def browser_headers(self) -> dict:
        origin = f"https://{self.host.split('://', 1)[1]}"
        headers = self.proxy_headers() | {"Origin": origin, "Referer": f"{origin}/accounts/login/",
                                          "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) load-bench"}  # fmt: skip
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        return headers

    def page(self, kind: str, response, *statuses: int):
        """``_expect``, keeping the cookies the page set.

        The proxy speaks TLS to the browser, which keeps the ``Secure`` (``__Host-``) cookies it is
        given; a cookie jar on this plain hop would never send them back, so the person does.
        """
        self.cookies.update(response.cookies.get_dict())
        return _expect(kind, response, *statuses)

    def sign_in(self, next_url: str) -> bool:
        """Password, then the authenticator's code, through the login pages; True if signed in."""
        step = int(time.time()) // 30
        if step <= self.last_step:  # this step's code was used: a person waits for the next one
            return False
        self.cookies = {}
        try:
            with self.client.get(f"/accounts/login/?next={next_url}", headers=self.browser_headers(),
                                 name="login: page", catch_response=True) as page:  # fmt: skip
                token = CSRF_FIELD.search(self.page("login", page, 200).text).group(1)
            form = {"csrfmiddlewaretoken": token, "username": self.person["username"],
                    "password": self.person["password"]}  # fmt: skip
            with self.client.post(f"/accounts/login/?next={next_url}", data=form, headers=self.browser_headers(),
                                  allow_redirects=False, name="login: password",
                                  catch_response=True) as answer:  # fmt: skip
                verify_url = self.page("login", answer, 302).headers["Location"]
            with self.client.get(verify_url, headers=self.browser_headers(), name="login: code page",
                                 catch_response=True) as page:  # fmt: skip
                token = CSRF_FIELD.search(self.page("login", page, 200).text).group(1)
            self.last_step = step
            code = {"csrfmiddlewaretoken": token, "code": totp_code(self.person["totp_key"], step)}
            with self.client.post(verify_url, data=code, headers=self.browser_headers(), allow_redirects=False,
                                  name="login: code", catch_response=True) as answer:  # fmt: skip
                landing = self.page("login", answer, 302).headers["Location"]
            with self.client.get(landing, headers=self.browser_headers(), name="login: landing",
                                 catch_response=True) as page:  # fmt: skip
                self.page("login", page, 200)
        except Unexpected:
            return False
        LEDGER["login"]["ok"] += 1
        return True


class ApiUser(Person):
    """A person using the API with a key, signing in to the account pages now and then."""

    weight = 1
    wait_time = between(2, 8)

    def on_start(self):
        self.person = next(_api_people)
        self.last_step = -1
        self.memories = list(self.person["memory_ids"])  # readable
        self.written = []  # written during the run: the ones it may delete

    def api_headers(self) -> dict:
        return self.proxy_headers() | {"Authorization": f"Bearer {self.person['key']}", "Accept": "application/json"}

    @task(8)
    def read(self):
        memory_id = random.choice(self.memories)
        with self.client.get(f"/api/v2/memories/{memory_id}/", headers=self.api_headers(), name="api: read",
                             catch_response=True) as answer:  # fmt: skip
            try:
                _expect("read", answer, 200)
            except Unexpected:
                return
        LEDGER["read"]["ok"] += 1
        KEYS_USED.add(self.person["username"])

    @task(4)
    def write(self):
        body = {"context_id": self.person["context_id"], "content": CONTENT, "source": "cli",
                "tags": [{"name": "load"}]}  # fmt: skip
        with self.client.post("/api/v2/memories/", json=body, headers=self.api_headers(), name="api: write",
                              catch_response=True) as answer:  # fmt: skip
            try:
                memory_id = _expect("write", answer, 201).json()["id"]
            except Unexpected:
                return
        LEDGER["write"]["ok"] += 1
        KEYS_USED.add(self.person["username"])
        self.memories.append(memory_id)
        self.written.append(memory_id)

    @task(2)
    def signed_delete(self):
        if not self.written:
            return self.write()
        memory_id = self.written.pop(random.randrange(len(self.written)))
        self.memories.remove(memory_id)
        path = f"/api/v2/memories/{memory_id}/"
        headers = self.api_headers() | signature_headers(
            key=self.person["key"], signing_secret=self.person["signing_secret"], method="DELETE", path=path
        )
        with self.client.delete(path, headers=headers, name="api: signed delete", catch_response=True) as answer:
            try:
                _expect("signed_delete", answer, 204)
            except Unexpected:
                return
        LEDGER["signed_delete"]["ok"] += 1
        KEYS_USED.add(self.person["username"])

    @task(1)
    def login(self):
        self.sign_in("/accounts/security/")


ADMIN_PAGES = {"console: dashboard": "/admin/", "console: alerts": "/admin/monitoring/alert/",
               "console: audit events": "/admin/audit/auditevent/"}  # fmt: skip


class ConsoleUser(Person):
    """A security administrator watching the console."""

    fixed_count = int(os.environ.get("LOAD_ADMINS", "1"))
    wait_time = between(5, 15)

    def on_start(self):
        self.person = next(_console_people)
        self.last_step = -1
        self.signed_in = False

    @task
    def view(self):
        if not self.signed_in:
            self.signed_in = self.sign_in("/admin/")
            return
        name, path = random.choice(list(ADMIN_PAGES.items()))
        with self.client.get(path, headers=self.browser_headers(), allow_redirects=False, name=name,
                             catch_response=True) as page:  # fmt: skip
            try:
                self.page("console_page", page, 200)
            except Unexpected:
                self.signed_in = False
                return
        LEDGER["console_page"]["ok"] += 1


class Attacker(Person):
    """Guesses load-victim's password once, from many addresses, after LOAD_BURST_AFTER_SECONDS."""

    fixed_count = 1
    wait_time = constant(1)

    def on_start(self):
        self.done = False
        self.person = {"ip": "203.0.113.1"}

    @task
    def burst(self):
        if self.done or time.monotonic() - _started_at < float(os.environ.get("LOAD_BURST_AFTER_SECONDS", "60")):
            return
        self.done = True
        for attempt in range(BURST_ATTEMPTS):
            self.person = {"ip": f"203.0.113.{10 + attempt}"}
            self.cookies = {}
            try:
                with self.client.get("/accounts/login/", headers=self.browser_headers(), name="burst: page",
                                     catch_response=True) as page:  # fmt: skip
                    token = CSRF_FIELD.search(self.page("failed_login", page, 200).text).group(1)
                form = {"csrfmiddlewaretoken": token, "username": VICTIM, "password": f"guess-{attempt}"}
                with self.client.post("/accounts/login/", data=form, headers=self.browser_headers(),
                                      allow_redirects=False,
                                      name="burst: wrong password", catch_response=True) as answer:  # fmt: skip
                    self.page("failed_login", answer, 200)
            except Unexpected:
                continue
            LEDGER["failed_login"]["ok"] += 1


@events.quitting.add_listener
def write_ledger(environment, **kwargs):
    ledger = {kind: {"ok": entry["ok"], "unexpected": dict(entry["unexpected"])} for kind, entry in LEDGER.items()}
    with open(os.environ["LOAD_LEDGER_FILE"], "w") as output:
        json.dump({"operations": ledger, "keys_used": len(KEYS_USED)}, output)
