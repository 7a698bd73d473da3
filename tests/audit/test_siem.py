"""SIEM export (audit/siem.py, ``manage.py audit_siem_export``): OCSF 1.x and ECS JSON lines.

On events recorded through the real entry points (the login page, the API, a queryset update,
the detection sweep's Celery task), sealed by ``audit_seal``: the OCSF class, category, activity,
status and time of each; ECS ``event.*``; every record's sequence; nothing secret in the output;
a cursor that, resumed, neither repeats nor skips; bad input answered with one clear line.
"""

from __future__ import annotations

import datetime
import io
import json
import re
import socket
import ssl
import threading
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.testing import login_with_mfa
from api import services as api_services
from audit import siem
from audit.actions import Action
from audit.models import AuditEvent
from audit.services import write_held_events
from memories.models import Context

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple 42"
WRONG_PASSWORD = "not the password at all"
SECRET_CONTENT = "the vault combination is 31-41-59-26"


@pytest.fixture
def trail(settings, tmp_path):
    """Real events of each OCSF class, sealed; returns the secrets that must not be exported."""
    settings.AUDIT_DIR = str(tmp_path / "audit")
    settings.MONITORING_BRUTE_FORCE_THRESHOLD = 3
    user_model = get_user_model()
    alice = user_model.objects.create_user(username="alice", email="alice@example.org", password=PASSWORD)
    user_model.objects.create_user(username="bob", email="bob@example.org", password=PASSWORD)
    context = Context.objects.create(name="Notes", scope="personal", owner_user=alice, created_by=alice)
    client = Client()
    login_with_mfa(client, alice)  # first: the test client's forced login has no host to put in an email
    Client().post("/accounts/login/", {"username": "bob", "password": PASSWORD})  # auth.login_succeeded
    for _ in range(3):  # auth.login_failed x3, then the sweep raises brute_force
        Client().post("/accounts/login/", {"username": "alice", "password": WRONG_PASSWORD})
    user_model.objects.filter(pk=alice.pk).update(is_staff=True)  # authz.staff_granted
    memory = {"context_id": context.pk, "content": SECRET_CONTENT}
    client.post("/api/v2/memories/", memory, content_type="application/json")
    issued = api_services.api_key_issue(actor=alice, owner=alice, name="ci", scopes=["memories:read"])
    write_held_events()
    from monitoring.tasks import detection_sweep

    detection_sweep.apply()
    write_held_events()
    call_command("audit_seal", stdout=io.StringIO())
    assert not AuditEvent.objects.filter(sequence__isnull=True).exists()
    return [PASSWORD, WRONG_PASSWORD, SECRET_CONTENT, "31-41-59-26", issued.key, issued.signing_secret]


def export(*args: str) -> list[dict]:
    out = io.StringIO()
    call_command("audit_siem_export", *args, stdout=out, stderr=io.StringIO())
    return [json.loads(line) for line in out.getvalue().splitlines()]


def by_action(records: list[dict], key) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for record in records:
        grouped.setdefault(key(record), []).append(record)
    return grouped


def test_ocsf_records_carry_class_category_activity_status_time_and_sequence(trail):
    records = export("--format", "ocsf")
    events = list(AuditEvent.objects.order_by("sequence"))
    assert [record["metadata"]["sequence"] for record in records] == [event.sequence for event in events]
    for record, event in zip(records, events, strict=True):
        assert record["time"] == int(event.timestamp.timestamp() * 1000)
        assert record["type_uid"] == record["class_uid"] * 100 + record["activity_id"]
        assert record["metadata"]["version"].startswith("1.") and record["unmapped"]["chain_hash"] == event.hash
    grouped = by_action(records, lambda record: record["metadata"]["event_code"])

    def shape(action: str) -> tuple:
        record = grouped[action][0]
        return record["class_uid"], record["category_uid"], record["activity_id"], record["status_id"]

    assert shape("auth.login_succeeded") == (3002, 3, 1, 1)
    assert shape("auth.login_failed") == (3002, 3, 1, 2)
    assert shape("authz.staff_granted") == (3001, 3, 7, 1)
    assert shape("memory.created") == (6003, 6, 1, 1)
    assert shape("api.key_issued") == (6003, 6, 1, 1)
    assert shape("monitoring.alert_raised") == (2004, 2, 1, 1)
    login = grouped["auth.login_succeeded"][0]
    assert login["user"]["name"] == "bob" and login["src_endpoint"]["ip"] == "127.0.0.1"
    alert = grouped["monitoring.alert_raised"][0]
    assert alert["finding_info"]["title"] == "brute_force" and alert["severity_id"] >= 3
    assert grouped["auth.login_failed"][0]["status"] == "Failure"


def test_ecs_documents_carry_the_event_fields_and_sequence(trail):
    documents = export("--format", "ecs")
    events = list(AuditEvent.objects.order_by("sequence"))
    assert [document["event"]["sequence"] for document in documents] == [event.sequence for event in events]
    grouped = by_action(documents, lambda document: document["event"]["action"])
    failed = grouped["auth.login_failed"][0]["event"]
    assert (failed["kind"], failed["category"], failed["type"], failed["outcome"]) == (
        "event", ["authentication", "session"], ["start"], "failure",
    )
    created = grouped["memory.created"][0]
    assert created["event"]["category"] == ["api"] and created["event"]["type"] == ["creation"]
    assert created["event"]["outcome"] == "success" and created["user"]["name"] == "alice"
    alert = grouped["monitoring.alert_raised"][0]["event"]
    assert alert["kind"] == "alert" and alert["category"] == ["intrusion_detection"]
    granted = grouped["authz.staff_granted"][0]
    assert granted["event"]["category"] == ["iam"] and granted["user"]["target"]["name"] == "alice"
    assert all(document["@timestamp"].endswith("Z") for document in documents)


@pytest.mark.parametrize("schema", siem.FORMATS)
def test_nothing_secret_is_exported(trail, schema):
    text = json.dumps(export("--format", schema))
    for secret in trail:
        assert secret not in text


@pytest.mark.parametrize("schema", siem.FORMATS)
def test_resuming_from_the_cursor_neither_repeats_nor_skips(trail, schema, tmp_path):
    cursor, output = tmp_path / "siem.cursor", tmp_path / "events.jsonl"
    every = list(AuditEvent.objects.order_by("sequence").values_list("sequence", flat=True))
    common = ["--format", schema, "--cursor", str(cursor), "--output", str(output)]
    call_command("audit_siem_export", *common, "--limit", "3", stderr=io.StringIO())
    assert json.loads(cursor.read_text())["sequence"] == every[2]
    call_command("audit_siem_export", *common, "--limit", "2", stderr=io.StringIO())
    # New events arrive between runs; the next run takes them and only them.
    Client().post("/accounts/login/", {"username": "alice", "password": WRONG_PASSWORD})
    write_held_events()
    call_command("audit_seal", stdout=io.StringIO())
    call_command("audit_siem_export", *common, stderr=io.StringIO())
    call_command("audit_siem_export", *common, stderr=io.StringIO())  # nothing new: writes nothing
    every = list(AuditEvent.objects.order_by("sequence").values_list("sequence", flat=True))
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    sequence_of = (lambda r: r["metadata"]["sequence"]) if schema == "ocsf" else (lambda r: r["event"]["sequence"])
    assert [sequence_of(line) for line in lines] == every
    assert json.loads(cursor.read_text()) == {"version": 1, "schema": schema, "sequence": every[-1]}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--after", "-1"], "--after takes a sequence: 0 or more."),
        (["--limit", "0"], "--limit takes a number of events: 1 or more."),
        (["--after", "3", "--cursor", "{cursor}"], "Give either --after or --cursor, not both."),
        (["--cursor", "{broken}"], "is not a cursor of audit_siem_export"),
        (["--cursor", "{ecs_cursor}"], "belongs to a ecs export, not ocsf"),
        (["--output", "{missing}/out.jsonl"], "does not exist"),
        (["--cursor", "{missing}/siem.cursor"], "does not exist"),
    ],
)
def test_bad_input_is_one_clear_error_and_writes_nothing(trail, tmp_path, args, message):
    broken, ecs_cursor = tmp_path / "broken.cursor", tmp_path / "ecs.cursor"
    broken.write_text("{not json")
    ecs_cursor.write_text(json.dumps({"version": 1, "schema": "ecs", "sequence": 2}))
    names = {"cursor": tmp_path / "c", "broken": broken, "ecs_cursor": ecs_cursor, "missing": tmp_path / "nope"}
    filled = [arg.format(**{key: str(value) for key, value in names.items()}) for arg in args]
    out = io.StringIO()
    with pytest.raises(CommandError, match=message.replace("-", r"\-").replace(".", r"\.")):
        call_command("audit_siem_export", "--format", "ocsf", *filled, stdout=out, stderr=io.StringIO())
    assert out.getvalue() == ""
    assert broken.read_text() == "{not json"
    assert json.loads(ecs_cursor.read_text())["sequence"] == 2


def test_every_action_has_an_ocsf_class_and_the_documented_mapping_is_current():
    """docs/siem.md holds the table ``siem.mapping_table()`` prints: regenerate it when this fails."""
    known = {(3002, 3), (3001, 3), (6003, 6), (2004, 2), (0, 0)}
    for action in Action:
        class_uid, category_uid, activity_id = siem.ocsf_class(action.value)
        assert (class_uid, category_uid) in known and 0 < activity_id <= 99
    assert {action for action in Action if action.value.startswith("monitoring.alert_")} <= {
        Action(value) for value, ((class_uid, _), _activity) in siem.OCSF_CLASSES.items() if class_uid == 2004
    }
    document = (Path(__file__).resolve().parents[2] / "docs" / "siem.md").read_text(encoding="utf-8")
    assert siem.mapping_table() in document


# --- syslog over TCP with TLS, against a local listener with a self-signed certificate -------------
SYSLOG_LINE = re.compile(
    rb"<(?P<pri>\d{1,3})>1 (?P<stamp>\S+) (?P<host>\S+) ninaivalaigal (?P<procid>\S+) (?P<msgid>\S+) "
    rb'\[ninaivalaigal@32473 sequence="(?P<sequence>\d+)" schema="(?P<schema>\w+)"\] \xef\xbb\xbf(?P<msg>.*)',
    re.S,
)


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "server.pem", folder / "server.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class TlsListener:
    """A syslog-over-TLS receiver (RFC 5425 octet counting) on a free local port, in a thread."""

    def __init__(self, cert: Path, key: Path):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.frames: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.server.accept()
            except OSError:
                return
            data = b""
            try:
                with self.context.wrap_socket(raw, server_side=True) as connection:
                    while chunk := connection.recv(65536):
                        data += chunk
            except (ssl.SSLError, OSError):
                pass  # a refused handshake (nothing received) or the end of the stream
            while data:
                length, _, rest = data.partition(b" ")
                self.frames.append(rest[: int(length)])
                data = rest[int(length):]

    def close(self) -> None:
        self.server.close()
        self.thread.join(timeout=5)


@pytest.fixture
def listener(tmp_path):
    cert, key = _self_signed(tmp_path)
    running = TlsListener(cert, key)
    yield running, cert
    running.close()


def test_syslog_over_tls_sends_one_rfc5424_message_per_event_with_its_sequence(trail, listener, tmp_path):
    server, cert = listener
    cursor = tmp_path / "syslog.cursor"
    call_command(
        "audit_siem_export", "--format", "ocsf", "--syslog", f"localhost:{server.port}", "--syslog-ca", str(cert),
        "--cursor", str(cursor), stderr=io.StringIO(),
    )
    server.close()
    events = list(AuditEvent.objects.order_by("sequence"))
    assert len(server.frames) == len(events)
    for frame, event in zip(server.frames, events, strict=True):
        match = SYSLOG_LINE.fullmatch(frame)
        assert match, frame[:200]
        assert int(match["sequence"]) == event.sequence and match["msgid"].decode() == event.action
        assert int(match["pri"]) == 13 * 8 + (6 if event.outcome == "success" else 4)  # log audit, info/warning
        record = json.loads(match["msg"])
        assert record["metadata"]["sequence"] == event.sequence and record["class_uid"] == siem.ocsf_class(
            event.action
        )[0]
    assert json.loads(cursor.read_text())["sequence"] == events[-1].sequence
    for secret in trail:
        assert secret.encode() not in b"".join(server.frames)


def test_a_syslog_server_whose_certificate_is_not_trusted_gets_nothing_and_the_cursor_stays(
    trail, listener, tmp_path
):
    server, _cert = listener
    cursor = tmp_path / "syslog.cursor"
    with pytest.raises(CommandError, match="Cannot reach the syslog server localhost:.* over TLS"):
        call_command(
            "audit_siem_export", "--format", "ocsf", "--syslog", f"localhost:{server.port}", "--cursor", str(cursor),
            stderr=io.StringIO(),
        )
    assert server.frames == [] and not cursor.exists()


@pytest.mark.parametrize("target", ["localhost", "localhost:http", ":6514", "localhost:70000"])
def test_a_malformed_syslog_address_is_one_clear_error(trail, target):
    with pytest.raises(CommandError, match="--syslog takes HOST:PORT"):
        call_command("audit_siem_export", "--format", "ocsf", "--syslog", target, stderr=io.StringIO())


def test_each_record_names_the_first_checkpoint_covering_it_or_null(settings, tmp_path):
    """A record carries the first signed checkpoint that covers its sequence; null until one does."""
    from audit.checkpoints import checkpoint_publish
    from audit.sealing import seal_pending
    from audit.services import record

    settings.AUDIT_DIR = str(tmp_path / "audit")
    for number in range(3):
        record(action=Action.MEMORY_READ, target=("memories.memory", number))
    seal_pending()
    assert checkpoint_publish().checkpoint.tree_size == 3
    for number in range(2):
        record(action=Action.MEMORY_READ, target=("memories.memory", 10 + number))
    seal_pending()
    first = {"origin": "ninaivalaigal.local/audit", "size": 3, "epoch": 1}
    ocsf = export("--format", "ocsf")
    assert [line["unmapped"]["checkpoint"] for line in ocsf] == [first] * 3 + [None] * 2
    assert checkpoint_publish().checkpoint.tree_size == 5
    ecs = export("--format", "ecs")
    later = {**first, "size": 5}
    assert [line["ninaivalaigal"]["audit"]["checkpoint"] for line in ecs] == [first] * 3 + [later] * 2
    resumed = export("--format", "ocsf", "--after", "3")
    assert [line["unmapped"]["checkpoint"] for line in resumed] == [later] * 2
    document = (Path(__file__).resolve().parents[2] / "docs" / "siem.md").read_text(encoding="utf-8")
    assert "| first signed checkpoint covering the event | `unmapped.checkpoint`" in document
