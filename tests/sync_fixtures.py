"""Fixtures for supplier sync and alert tests: the supplier simulator, a chat
robot webhook and an SMTP server, each listening on a random localhost port.

Import the fixtures you use into the test module (pytest finds them there).
"""
import base64
import email
import email.policy
import ipaddress
import json
import socketserver
import ssl
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest
from werkzeug.wrappers import Request, Response

from kamen.extensions import db
from kamen.models import Supplier, SupplierKind
from kamen.secretbox import encrypt
from tests.suppliers.simulator import Simulator, make_catalog, serve

KAMEN_STATION, KAMEN_SECRET = "station-1", "kamen-station-secret"


@contextmanager
def serving_simulator(products=5):
    """A remote supplier with ``products`` products (1001-…), over real HTTP."""
    sim = Simulator(make_catalog(products))
    sim.kamen_stations = {KAMEN_STATION: KAMEN_SECRET}
    with serve(sim.app()) as url:
        sim.url = url
        yield sim


@pytest.fixture
def simulator():
    """A remote supplier with five products (1001-1005), over real HTTP."""
    with serving_simulator() as sim:
        yield sim


def make_supplier(sim, kind=SupplierKind.KAMEN, **fields):
    """A supplier row pointing at the simulator, its secret stored encrypted as the admin form does."""
    app_id, secret = {
        SupplierKind.KAMEN: (KAMEN_STATION, KAMEN_SECRET),
        SupplierKind.FULU: (sim.fulu_app_key, sim.fulu_secret),
        SupplierKind.ACGFAKA: (sim.acg_app_id, sim.acg_app_key),
    }[kind]
    values = {"code": f"sim-{kind.value}", "name": "模拟货源", "kind": kind, "base_url": sim.url,
              "app_id": app_id, "secret_encrypted": encrypt(secret)}
    values.update(fields)
    supplier = Supplier(**values)
    db.session.add(supplier)
    db.session.commit()
    return supplier


@dataclass
class Robot:
    """A WeCom/DingTalk group robot: records what it is sent and answers ``reply``."""

    url: str = ""
    received: list = field(default_factory=list)  # (path with query string, JSON body)
    reply: dict = field(default_factory=lambda: {"errcode": 0, "errmsg": "ok"})

    def __call__(self, environ, start_response):
        request = Request(environ)
        self.received.append((request.full_path.rstrip("?"), request.get_json(silent=True)))
        return Response(json.dumps(self.reply), content_type="application/json")(environ, start_response)


@pytest.fixture
def robot():
    robot = Robot()
    with serve(robot) as url:
        robot.url = url + "/robot/send?access_token=tok"
        yield robot


@dataclass
class Mailbox:
    host: str = "127.0.0.1"
    port: int = 0
    messages: list = field(default_factory=list)  # email.message.EmailMessage
    logins: list = field(default_factory=list)  # (user, password, over TLS)
    tls_context: object = None  # an ssl.SSLContext: offer STARTTLS with it


class _SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: EHLO, STARTTLS (when the box has a TLS
    context), AUTH PLAIN, MAIL, RCPT, DATA, QUIT."""

    def say(self, line):
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self):
        box = self.server.mailbox
        tls = False
        self.say("220 localhost test SMTP")
        while raw := self.rfile.readline():
            verb, _, arg = raw.decode().rstrip("\r\n").partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                self.say("250-localhost")
                if box.tls_context is not None and not tls:
                    self.say("250-STARTTLS")
                self.say("250 AUTH PLAIN")
            elif verb == "STARTTLS":
                self.say("220 Ready to start TLS")
                self.request = box.tls_context.wrap_socket(self.request, server_side=True)
                self.rfile, self.wfile = self.request.makefile("rb"), self.request.makefile("wb")
                tls = True
            elif verb == "AUTH":
                _, user, password = base64.b64decode(arg.split()[1]).decode().split("\0")
                box.logins.append((user, password, tls))
                self.say("235 2.7.0 Authentication successful")
            elif verb == "DATA":
                self.say("354 End data with <CR><LF>.<CR><LF>")
                lines = []
                while (line := self.rfile.readline()) and line != b".\r\n":
                    lines.append(line[1:] if line.startswith(b"..") else line)
                box.messages.append(email.message_from_bytes(b"".join(lines), policy=email.policy.default))
                self.say("250 OK")
            elif verb == "QUIT":
                self.say("221 Bye")
                return
            else:  # HELO, MAIL, RCPT, RSET, NOOP
                self.say("250 OK")


@contextmanager
def _smtp_server(tls_context=None):
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SMTPHandler)
    server.daemon_threads = True
    server.mailbox = Mailbox(port=server.server_address[1], tls_context=tls_context)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server.mailbox
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def mailbox():
    """A local SMTP server (plain, no TLS) collecting every message sent to it."""
    with _smtp_server() as box:
        yield box


@pytest.fixture
def tls_mailbox(tmp_path, monkeypatch):
    """A local SMTP server offering STARTTLS with a certificate for 127.0.0.1 that
    this test's default SSL context trusts (through SSL_CERT_FILE)."""
    cert, key = _self_signed_cert(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with _smtp_server(context) as box:
        yield box


def _self_signed_cert(directory):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path
