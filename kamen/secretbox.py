"""Credentials at rest: supplier and station secrets are stored encrypted.

The key is derived from SECRET_KEY, so a database dump alone does not leak
them. Changing SECRET_KEY makes stored secrets unreadable: re-enter them.
"""
import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app


class SecretUnreadable(ValueError):
    pass


def _fernet():
    digest = hashlib.sha256(b"kamen-secretbox:" + current_app.config["SECRET_KEY"].encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt(plain):
    return _fernet().encrypt(plain.encode("utf-8")).decode("ascii") if plain else ""


def decrypt(token):
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken as exc:
        raise SecretUnreadable("密钥无法解密（SECRET_KEY 可能已更换），请重新填写密钥") from exc


def mask(plain):
    """What an admin sees of a stored secret: that it exists, never its value."""
    return "已设置（••••••）" if plain else "未设置"


def seal(data):
    """Bytes at rest (an uploaded card-code file), as for the text secrets above."""
    return _fernet().encrypt(data)


def unseal(token):
    try:
        return _fernet().decrypt(token)
    except InvalidToken as exc:
        raise SecretUnreadable("文件无法解密（SECRET_KEY 可能已更换），请重新上传") from exc
