"""Addresses kamen connects to (issue 12): link-local and cloud metadata
addresses are refused for suppliers, robots and SMTP, however they are
written; loopback and private networks are allowed; SMTP uses STARTTLS."""
import socket

import pytest
import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import Supplier, SupplierKind
from kamen.outbound import AddressRefused, check_host, check_url
from kamen.secretbox import encrypt
from kamen.services import alerts, settings
from tests.sync_fixtures import make_supplier
from tests.test_supplier_checks import MANUAL
from tests.test_syncing import sync

REFUSED = [
    "169.254.169.254", "169.254.0.1", "[fe80::1]", "[fe80::1%25eth0]", "[::ffff:169.254.169.254]",
    "[::ffff:a9fe:a9fe]", "[64:ff9b::a9fe:a9fe]", "100.100.100.200", "[fd00:ec2::254]", "metadata.google.internal",
    "2852039166",  # 169.254.169.254 as one decimal number
    "0xa9.0xfe.0xa9.0xfe",
]
ALLOWED = ["127.0.0.1", "localhost", "10.0.0.5", "192.168.1.10", "172.16.0.1", "::1", "8.8.8.8", "[::1]"]


@pytest.mark.parametrize("host", REFUSED)
def test_link_local_and_metadata_hosts_are_refused(host):
    with pytest.raises(AddressRefused, match="不允许使用"):
        check_url(f"https://{host}/api")
    with pytest.raises(AddressRefused, match="不允许使用"):
        check_host(host.strip("[]").replace("%25", "%"))  # as an SMTP host is typed


@pytest.mark.parametrize("host", ALLOWED)
def test_loopback_private_and_public_hosts_are_allowed(host):
    assert check_url(f"https://{host}/api") is None


def test_a_dns_name_resolving_to_link_local_is_refused(monkeypatch):
    real = socket.getaddrinfo

    def fake(host, *args, **kwargs):
        if host == "evil.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 0))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    with pytest.raises(AddressRefused, match=r"evil.example（解析为 169.254.169.254）"):
        check_host("evil.example")


def test_plain_http_is_a_warning_not_a_refusal():
    assert "http://" in check_url("http://10.0.0.5:8080")


@pytest.fixture
def admin(auth):
    auth.login()
    return auth.client


def test_supplier_form_refuses_a_metadata_address_and_says_why(app, admin):
    data = {**MANUAL, "kind": "kamen", "code": "meta", "base_url": "http://169.254.169.254/latest",
            "app_id": "x", "secret": "y"}
    response = admin.post("/admin/suppliers/new", data=data)
    assert response.status_code == 400 and "元数据服务" in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(Supplier).filter_by(code="meta")) is None


def test_supplier_on_plain_http_is_saved_with_a_warning(app, admin, simulator):
    data = {**MANUAL, "kind": "kamen", "code": "lan", "base_url": simulator.url, "app_id": "x", "secret": "y"}
    page = admin.post("/admin/suppliers/new", data=data, follow_redirects=True).get_data(as_text=True)
    assert "已保存" in page and "建议改用 https://" in page


def test_a_stored_address_that_now_points_at_link_local_is_refused_at_connect_time(app, simulator):
    supplier = make_supplier(simulator, kind=SupplierKind.ACGFAKA, base_url="http://[::ffff:169.254.169.254]:80")
    run = sync(supplier)
    assert run.status == "failed" and "不允许使用" in run.message
    assert simulator.requests == []


def test_alert_settings_refuse_link_local_webhook_and_smtp(app, admin):
    form = {"webhook_kind": "wecom", "webhook_url": "http://169.254.169.254/hook", "email_to": "a@b.c",
            "smtp_host": "fe80::1", "smtp_port": "25", "sync_failure_alert_after": "3"}
    response = admin.post("/admin/settings/alerts", data=form)
    body = response.get_data(as_text=True)
    assert response.status_code == 400 and "Webhook 地址不允许使用" in body and "SMTP 服务器不允许使用" in body


def test_a_stored_link_local_webhook_is_not_called(app):
    settings.put(db.session, "alerts", {"webhook_kind": "wecom", "webhook_url": "http://169.254.169.254/x"})
    note = alerts.raise_alert(db.session, "test", "测试", ["行"])
    assert "机器人发送失败" in note.body and "不允许使用" in note.body


def test_smtp_uses_starttls_when_the_server_offers_it(app, tls_mailbox):
    settings.put(db.session, "alerts", {
        "email_to": "boss@example.com", "smtp_host": tls_mailbox.host, "smtp_port": tls_mailbox.port,
        "smtp_ssl": False, "smtp_user": "shop@example.com", "smtp_password": encrypt("mail-pass"),
    })
    note = alerts.raise_alert(db.session, "test", "测试告警", ["一行"])
    assert "发送失败" not in note.body
    assert tls_mailbox.logins == [("shop@example.com", "mail-pass", True)]  # the password went over TLS
    assert [m["Subject"] for m in tls_mailbox.messages] == ["[kamen] 测试告警"]
