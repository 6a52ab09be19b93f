"""Request signing for kamen's upstream API (``/api/upstream/v1``), both sides.

The 分站 (client) calls ``sign_headers``; the 主站 (server) calls ``verify``.
Pure functions: no Flask, no database.

Headers on every request::

    X-Kamen-App-Id     the station's app id
    X-Kamen-Timestamp  unix seconds
    X-Kamen-Nonce      8-64 characters of [A-Za-z0-9_-], never reused
    X-Kamen-Signature  hex HMAC-SHA256(secret, string_to_sign)

    string_to_sign = "\\n".join([METHOD, path_with_query, timestamp, nonce, sha256_hex(body)])

``path_with_query`` is the request target exactly as sent: the URL path, then
``?`` and the raw query string when there is one (no ``?`` otherwise). The
body hash is over the raw body bytes (empty body: sha256 of b"").

The server refuses a timestamp more than 300 s from its clock either way, and
a nonce it has already accepted for that app id (keep them 600 s).
"""
import hashlib
import hmac
import re
import secrets
import time

HEADER_APP_ID = "X-Kamen-App-Id"
HEADER_TIMESTAMP = "X-Kamen-Timestamp"
HEADER_NONCE = "X-Kamen-Nonce"
HEADER_SIGNATURE = "X-Kamen-Signature"
MAX_SKEW_SECONDS = 300
NONCE_TTL_SECONDS = 2 * MAX_SKEW_SECONDS
_NONCE = re.compile(r"[A-Za-z0-9_-]{8,64}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")  # ASCII digits only: "²".isdigit() is True


def string_to_sign(method, path_with_query, timestamp, nonce, body=b""):
    if isinstance(body, str):
        body = body.encode("utf-8")
    return "\n".join(
        [method.upper(), path_with_query, str(timestamp), nonce, hashlib.sha256(body or b"").hexdigest()]
    )


def signature(secret, method, path_with_query, timestamp, nonce, body=b""):
    message = string_to_sign(method, path_with_query, timestamp, nonce, body)
    return hmac.new(secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()


def sign_headers(app_id, secret, method, path_with_query, body=b"", *, timestamp=None, nonce=None):
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or secrets.token_hex(16)
    return {
        HEADER_APP_ID: app_id,
        HEADER_TIMESTAMP: timestamp,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: signature(secret, method, path_with_query, timestamp, nonce, body),
    }


def request_target(request):
    """``path_with_query`` of a Flask/Werkzeug request, as the client signed it."""
    query = request.query_string.decode("latin-1")
    return request.script_root + request.path + (f"?{query}" if query else "")


class VerificationError(Exception):
    """Refused; ``code`` for the JSON error body, ``message`` in Chinese. Answer HTTP 401."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def verify(headers, method, path, body, secret_lookup, nonce_seen, *, now=None):
    """Check a signed request and return its app id, or raise VerificationError.

    ``secret_lookup(app_id)`` gives the station's secret or None.
    ``nonce_seen(app_id, nonce)`` records the nonce and says whether it was
    already there (do it atomically, e.g. INSERT … ON CONFLICT or Redis SET NX
    with a TTL of NONCE_TTL_SECONDS); it is asked only once the signature holds,
    so forged requests cannot use up nonces.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    missing = [h for h in (HEADER_APP_ID, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)
               if not lowered.get(h.lower())]
    if missing:
        raise VerificationError("missing_header", f"缺少签名请求头：{', '.join(missing)}")
    app_id = lowered[HEADER_APP_ID.lower()]
    timestamp = lowered[HEADER_TIMESTAMP.lower()]
    nonce = lowered[HEADER_NONCE.lower()]
    given = lowered[HEADER_SIGNATURE.lower()]
    if not _UNIX_SECONDS.fullmatch(timestamp):
        raise VerificationError("bad_timestamp", "时间戳格式错误，应为 Unix 秒")
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > MAX_SKEW_SECONDS:
        raise VerificationError("expired", "请求时间与主站相差超过 5 分钟，请校准分站服务器时间")
    if not _NONCE.fullmatch(nonce):
        raise VerificationError("bad_nonce", "随机串（nonce）格式错误")
    secret = secret_lookup(app_id)
    if not secret:
        raise VerificationError("unknown_app", "AppID 不存在或已停用")
    expected = signature(secret, method, path, timestamp, nonce, body)
    if not _HEX64.fullmatch(given) or not hmac.compare_digest(expected, given.lower()):
        raise VerificationError("bad_signature", "签名错误，请检查 AppID 和密钥")
    if nonce_seen(app_id, nonce):
        raise VerificationError("nonce_reused", "重复的请求（nonce 已使用）")
    return app_id
