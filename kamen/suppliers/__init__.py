"""Supplier adapters, one per upstream kind, all speaking the contract in base.

``adapter_for(kind, config)`` builds one from a plain dict (the lead builds it
from a Supplier row). Keys:

- ``base_url``: the supplier's site or gateway root
- ``app_key`` (Fulu) / ``app_id`` (acg-faka user id, kamen station id)
- ``secret``: the signing secret (Fulu AppSecret, acg-faka app_key, kamen secret)
- ``timeout``: seconds, optional (default 10)
- ``time_zone``: Fulu only, the supplier's clock (default Asia/Shanghai)
- ``verify_reply_sign``: Fulu only, refuse replies whose sign is wrong (default True)
- ``callback_url``: the absolute URL of kamen's order callback for this supplier
  (``/api/suppliers/<id>/callback``), for adapters that send a notify URL; None
  when kamen does not know its own address
"""
from kamen.suppliers.acgfaka import AcgFakaAdapter
from kamen.suppliers.base import SupplierAdapter, SupplierError
from kamen.suppliers.fulu import FuluAdapter
from kamen.suppliers.kamen_upstream import KamenUpstreamAdapter
from kamen.suppliers.manual import ManualAdapter

_LABELS = {"base_url": "货源地址", "app_key": "AppKey", "app_id": "AppID", "secret": "密钥"}


def _required(config, *keys):
    missing = [_LABELS[k] for k in keys if not str(config.get(k) or "").strip()]
    if missing:
        raise SupplierError(f"货源配置不完整：缺少{'、'.join(missing)}")
    return [str(config[k]).strip() for k in keys]


def adapter_for(kind, config) -> SupplierAdapter:
    adapter = _build(getattr(kind, "value", kind), config)
    adapter.callback_url = config.get("callback_url") or None
    return adapter


def _build(kind, config):
    timeout = config.get("timeout")
    if kind == "fulu":
        base_url, app_key, secret = _required(config, "base_url", "app_key", "secret")
        return FuluAdapter(base_url, app_key, secret, timeout,
                           time_zone=config.get("time_zone") or "Asia/Shanghai",
                           verify_reply_sign=config.get("verify_reply_sign", True))
    if kind == "acgfaka":
        base_url, app_id, secret = _required(config, "base_url", "app_id", "secret")
        return AcgFakaAdapter(base_url, app_id, secret, timeout)
    if kind == "kamen":
        base_url, app_id, secret = _required(config, "base_url", "app_id", "secret")
        return KamenUpstreamAdapter(base_url, app_id, secret, timeout)
    if kind == "manual":
        return ManualAdapter()
    raise SupplierError(f"不支持的货源类型：{kind}")
