"""What each supplier kind calls its connection settings, how they must look,
and the likely mistake behind a failed 测试连接.

The form shows these labels and hints for the chosen kind (the page switches
them when the kind changes); save_supplier applies ``normalize_credentials``.
"""
import re
from dataclasses import dataclass

from kamen.models import SupplierKind
from kamen.suppliers.base import AuthFailed


@dataclass(frozen=True)
class KindTexts:
    base_url: tuple  # (label, hint)
    app_id: tuple
    secret: tuple


TEXTS = {
    SupplierKind.KAMEN: KindTexts(
        ("主站地址", "主站网址，如 https://main.example.com"),
        ("AppID", "主站后台 → 分站 中为本站创建的 AppID（ks 开头）"),
        ("密钥", "创建分站时只显示一次的密钥"),
    ),
    SupplierKind.FULU: KindTexts(
        ("网关地址", "如 https://openapi.fulu.com，或带 /api/getway 的完整网关地址"),
        ("AppKey", "开放平台分配的 AppKey"),
        ("AppSecret", "32 位 AppSecret（也用于解密卡密）"),
    ),
    SupplierKind.ACGFAKA: KindTexts(
        ("主站网址", "acg-faka 主站首页地址，如 https://shop.example.com"),
        ("用户ID", "你在主站的用户ID（数字），见主站“共享店铺 / 对接”"),
        ("对接密钥", "主站给出的 16 位对接密钥（字母和数字，会自动转为大写）"),
    ),
    SupplierKind.MANUAL: KindTexts(
        ("接口地址", "表格/手工货源不用填写"),
        ("AppID", "表格/手工货源不用填写"),
        ("密钥", "表格/手工货源不用填写"),
    ),
}

_ACG_KEY = re.compile(r"[0-9A-F]{16}")


class CredentialsInvalid(ValueError):
    pass


def texts_by_field():
    """{field: {kind value: [label, hint]}} for the page's kind switch."""
    return {name: {kind.value: list(getattr(t, name)) for kind, t in TEXTS.items()}
            for name in ("base_url", "app_id", "secret")}


def normalize_credentials(kind, app_id, secret):
    """(app_id, secret) trimmed and checked for the kind; secret None keeps the stored one."""
    app_id = (app_id or "").strip()
    secret = (secret or "").strip() or None
    if kind is SupplierKind.ACGFAKA:
        if app_id and not app_id.isdigit():
            raise CredentialsInvalid("acg-faka 的用户ID应为数字")
        if secret is not None:
            secret = secret.upper()
            if not _ACG_KEY.fullmatch(secret):
                raise CredentialsInvalid("acg-faka 的对接密钥应为 16 位字母数字（0-9、A-F）")
    elif kind is SupplierKind.FULU and secret is not None and len(secret) != 32:
        raise CredentialsInvalid(f"福禄 AppSecret 应为 32 个字符，你填了 {len(secret)} 个")
    return app_id, secret


# (words in the error, the likely mistake), checked in order, per kind.
_MISTAKES = {
    SupplierKind.ACGFAKA: (
        ("商户ID不存在", "用户ID不对：填你在主站的数字用户ID；也可能主站没有给你开通对接"),
        ("密钥错误", "对接密钥不对：请从主站重新复制 16 位对接密钥"),
    ),
    SupplierKind.FULU: (
        ("app_key", "AppKey 不对或未开通"),
        ("签名", "AppSecret 不对（或与 AppKey 不是一对）"),
    ),
    SupplierKind.KAMEN: (
        ("unknown_app", "AppID 不对，或主站已删除该分站"),
        ("bad_signature", "密钥不对：主站重置过密钥时请填写新密钥"),
        ("station_disabled", "主站停用了本分站，请联系主站"),
        ("expired", "本机时间不准：请校准服务器时间"),
    ),
}
_COMMON = (
    ("网页而不是接口数据", "地址可能填成了网站的其他页面，或选错了对接方式"),
    ("HTTP 404", "地址或对接方式选错：请核对货源类型和地址"),
    ("无法连接", "地址写错、对方网站没开，或本机网络不通"),
    ("超时", "对方响应太慢或地址不可达"),
    ("跳转", "地址可能少了 https:// 或多了路径：请填写跳转后的地址"),
)


def likely_mistake(kind, error):
    """A short Chinese hint for a failed 测试连接, or None when nothing fits."""
    text = str(error)
    for words, hint in _MISTAKES.get(kind, ()) + _COMMON:
        if words in text:
            return hint
    if isinstance(error, AuthFailed):
        return "凭据不对：请核对用户ID/AppKey 和密钥"
    return None
