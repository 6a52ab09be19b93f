"""Fixtures for supplier sync and alert tests: the supplier simulator, a chat
robot webhook and an SMTP server, each listening on a random localhost port.

Import the fixtures you use into the test module (pytest finds them there).
"""
import base64
import email
import email.policy
import json
import socketserver
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

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
    logins: list = field(default_factory=list)  # (user, password)


class _SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT."""

    def say(self, line):
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self):
        box = self.server.mailbox
        self.say("220 localhost test SMTP")
        for raw in self.rfile:
            verb, _, arg = raw.decode().rstrip("\r\n").partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                self.say("250-localhost")
                self.say("250 AUTH PLAIN")
            elif verb == "AUTH":
                _, user, password = base64.b64decode(arg.split()[1]).decode().split("\0")
                box.logins.append((user, password))
                self.say("235 2.7.0 Authentication successful")
            elif verb == "DATA":
                self.say("354 End data with <CR><LF>.<CR><LF>")
                lines = []
                for line in self.rfile:
                    if line == b".\r\n":
                        break
                    lines.append(line[1:] if line.startswith(b"..") else line)
                box.messages.append(email.message_from_bytes(b"".join(lines), policy=email.policy.default))
                self.say("250 OK")
            elif verb == "QUIT":
                self.say("221 Bye")
                return
            else:  # HELO, MAIL, RCPT, RSET, NOOP
                self.say("250 OK")


@pytest.fixture
def mailbox():
    """A local SMTP server (plain, no TLS) collecting every message sent to it."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SMTPHandler)
    server.daemon_threads = True
    server.mailbox = Mailbox(port=server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server.mailbox
    finally:
        server.shutdown()
        server.server_close()
