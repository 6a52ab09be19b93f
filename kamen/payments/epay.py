"""易支付 (epay) V1: the signature both sides of the protocol share.

Wire facts (docs/epay.md): drop ``sign``, ``sign_type`` and empty values,
sort by key, join ``k=v`` with ``&`` using the raw (not URL-encoded) values,
append the merchant key with no separator, md5, lowercase hex.
"""
import hashlib
import hmac

UNSIGNED = ("sign", "sign_type")


def signing_string(params):
    """The text that is signed: ``a=1&b=2`` over the non-empty, signed fields."""
    items = sorted(
        (str(k), str(v)) for k, v in params.items() if k not in UNSIGNED and v is not None and str(v) != ""
    )
    return "&".join(f"{k}={v}" for k, v in items)


def sign(params, key):
    return hashlib.md5((signing_string(params) + key).encode("utf-8")).hexdigest()


def verify(params, key):
    """True when ``params['sign']`` is the right signature (constant-time compare)."""
    given = str(params.get("sign") or "")
    return bool(given) and hmac.compare_digest(given.lower().encode(), sign(params, key).encode())


def signed(params, key):
    """``params`` without empty values, plus ``sign`` and ``sign_type``: ready to send."""
    out = {k: str(v) for k, v in params.items() if v is not None and str(v) != "" and k not in UNSIGNED}
    out["sign"] = sign(out, key)
    out["sign_type"] = "MD5"
    return out
