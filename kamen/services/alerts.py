"""Alerts: a dashboard notification, plus the robot webhook and email when set.

One alert is one message listing every item (never one message per product):
WeCom and DingTalk robots accept about 20 messages a minute.
"""
import base64
import hashlib
import hmac
import logging
import smtplib
import ssl
import time
from email.message import EmailMessage
from urllib.parse import quote_plus, urlsplit

import requests

from kamen.models import Notification
from kamen.outbound import check_host, check_url
from kamen.secretbox import SecretUnreadable, decrypt, encrypt, mask
from kamen.services import catalog, settings

log = logging.getLogger("kamen.alerts")

WECOM_MARKDOWN_LIMIT = 4096
DINGTALK_LIMIT = 4096
MAX_LINES = 200
# Stored encrypted and never shown back: the webhook URL holds the robot's key.
SECRET_FIELDS = ("webhook_url", "dingtalk_secret", "smtp_password")


def save_settings(session, values):
    """Store the alert settings; a secret left blank keeps the stored one."""
    current = settings.get(session, "alerts")
    values = dict(values)
    for name in SECRET_FIELDS:
        values[name] = encrypt(values[name]) if values.get(name) else current.get(name, "")
    settings.put(session, "alerts", {**current, **values})
    catalog.forget_shop_tree()  # the shop's 库存紧张 follows the threshold


def stored_webhook_url(config):
    """The robot URL from the stored settings. A URL saved before it was
    encrypted (plain ``http…``; a Fernet token never starts so) still works;
    migration 0008 encrypts those."""
    value = config.get("webhook_url", "")
    return value if value.startswith(("http://", "https://")) else decrypt(value)


def secret_states(session):
    """What the settings form shows of each stored secret (the webhook: only its host)."""
    config = settings.get(session, "alerts")
    states = {}
    for name in SECRET_FIELDS:
        try:
            plain = stored_webhook_url(config) if name == "webhook_url" else decrypt(config.get(name, ""))
        except SecretUnreadable:
            states[name] = "无法解密，请重新填写"
            continue
        if name == "webhook_url" and plain:
            parts = urlsplit(plain)
            states[name] = f"已设置（{parts.scheme}://{parts.netloc}/…，密钥已隐藏）"
        else:
            states[name] = mask(plain)
    return states


def raise_alert(session, kind, title, lines):
    """Record a notification and push it to the configured channels.

    Channel failures are logged and noted on the notification; they never
    undo the work that raised the alert."""
    lines = list(lines)
    note = Notification(kind=kind, title=title, body="\n".join(lines[:MAX_LINES]))
    session.add(note)
    session.commit()
    config = settings.get(session, "alerts")
    problems = []
    for channel in (_send_webhook, _send_email):
        try:
            channel(config, title, lines)
        except Exception as exc:  # a channel down must not break a sync
            reason = _describe(exc)
            log.warning("alert channel %s failed: %s", channel.__name__, reason)
            problems.append(f"{_CHANNEL_NAMES[channel.__name__]}发送失败：{reason}")
    if problems:
        note.body += "\n\n" + "\n".join(problems)
        session.commit()
    return note


def fit_lines(title, lines, limit, prefix="> "):
    """Markdown text of the lines, cut to ``limit`` UTF-8 bytes with a count of the rest."""
    head = f"**{title}**\n"
    out, size = [], len(head.encode())
    for n, line in enumerate(lines):
        piece = f"{prefix}{line}\n"
        rest = f"…另有 {len(lines) - n} 项，请到后台查看"
        if size + len(piece.encode()) + len(rest.encode()) > limit:
            out.append(rest)
            break
        out.append(piece.rstrip("\n"))
        size += len(piece.encode())
    return head + "\n".join(out)


def dingtalk_signed_url(url, secret, timestamp_ms=None):
    timestamp_ms = timestamp_ms or int(time.time() * 1000)
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    sign = quote_plus(base64.b64encode(digest).decode())
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}timestamp={timestamp_ms}&sign={sign}"


def _send_webhook(config, title, lines):
    kind, url = config.get("webhook_kind"), stored_webhook_url(config)
    if not kind or not url:
        return
    if kind == "wecom":
        payload = {"msgtype": "markdown", "markdown": {"content": fit_lines(title, lines, WECOM_MARKDOWN_LIMIT)}}
    else:
        secret = decrypt(config.get("dingtalk_secret", ""))
        if secret:
            url = dingtalk_signed_url(url, secret)
        payload = {"msgtype": "markdown", "markdown": {"title": title, "text": fit_lines(title, lines, DINGTALK_LIMIT)}}
    check_url(url, "机器人地址")
    resp = requests.post(url, json=payload, timeout=10, allow_redirects=False)
    resp.raise_for_status()
    body = resp.json()
    if body.get("errcode", 0) != 0:
        raise RuntimeError(f"机器人返回错误 {body.get('errcode')}：{body.get('errmsg')}")


def send_mail(session, to, subject, lines):
    """A message to someone other than the admin (a buyer), through the alert settings' SMTP
    server. False when no SMTP server is set; raises when sending fails."""
    config = settings.get(session, "alerts")
    if not config.get("smtp_host"):
        return False
    _smtp_send(config, to, subject, lines)
    return True


def _send_email(config, title, lines):
    to, host = config.get("email_to"), config.get("smtp_host")
    if not to or not host:
        return
    _smtp_send(config, to, f"[kamen] {title}", [title, ""] + lines)


def _smtp_send(config, to, subject, lines):
    host = config["smtp_host"]
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = config.get("smtp_user") or "kamen@localhost"
    message["To"] = to
    message.set_content("\n".join(lines))
    check_host(host, "SMTP 服务器")
    smtp_cls = smtplib.SMTP_SSL if config.get("smtp_ssl") else smtplib.SMTP
    with smtp_cls(host, int(config.get("smtp_port") or 25), timeout=10) as smtp:
        if not config.get("smtp_ssl"):
            smtp.ehlo()
            if smtp.has_extn("starttls"):  # offered: never send the password in the clear
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
        password = decrypt(config.get("smtp_password", ""))
        if config.get("smtp_user") and password:
            smtp.login(config["smtp_user"], password)
        smtp.send_message(message)


def _describe(exc):
    """Why a channel failed, without the webhook URL (its key or token is a secret)."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"机器人地址返回 HTTP {exc.response.status_code}"
    if isinstance(exc, requests.RequestException):
        return f"无法连接机器人地址（{type(exc).__name__}）"
    return str(exc)


_CHANNEL_NAMES = {"_send_webhook": "机器人", "_send_email": "邮件"}
