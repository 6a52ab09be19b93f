"""What goods need to reach the buyer: the delivery a product's name implies, and
the buyer-field presets (手机号, QQ号 …) an admin picks instead of writing
`字段名|显示名称|正则`. Imports, the product form and syncs all use this module."""
import unicodedata
from dataclasses import dataclass

from kamen.models import StockMode, SupplierKind


@dataclass(frozen=True)
class Preset:
    key: str
    label: str
    fields: tuple  # ({"key", "label", "pattern", "hint"}, ...)

    def buyer_fields(self):
        return [dict(f) for f in self.fields]


PRESETS = {
    p.key: p
    for p in (
        Preset("phone", "手机号", ({"key": "account", "label": "手机号", "pattern": r"^1[3-9]\d{9}$",
                                    "hint": "11 位手机号"},)),
        Preset("qq", "QQ号", ({"key": "account", "label": "QQ号", "pattern": r"^[1-9]\d{4,11}$",
                                "hint": "5-12 位数字"},)),
        Preset("game", "游戏账号 + 区服", (
            {"key": "account", "label": "游戏账号", "pattern": r"^\S{2,64}$", "hint": "游戏内的登录账号或角色ID"},
            {"key": "region", "label": "区服", "pattern": r"^\S.{0,39}$", "hint": "如：微信区 / QQ区 · 服务器名"},
        )),
        Preset("email", "邮箱", ({"key": "email", "label": "邮箱", "pattern": r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
                                   "hint": "接收充值结果的电子邮箱"},)),
        Preset("account", "充值账号", ({"key": "account", "label": "充值账号", "pattern": "", "hint": ""},)),
    )
}
# What an 充值账号格式 cell or an admin may call a preset.
PRESET_WORDS = {
    "手机号": "phone", "手机": "phone", "手机号码": "phone", "电话": "phone", "phone": "phone",
    "qq": "qq", "qq号": "qq", "qq号码": "qq",
    "游戏账号": "game", "游戏账号+区服": "game", "游戏账号区服": "game", "区服": "game", "game": "game",
    "邮箱": "email", "电子邮箱": "email", "email": "email", "e-mail": "email",
    "充值账号": "account", "账号": "account", "account": "account",
}

CARD_WORDS = ("卡密", "激活码", "兑换码", "cdk", "cdkey", "礼品卡", "序列号")
PHONE_WORDS = ("话费", "流量", "快充", "慢充", "手机充值")
QQ_WORDS = ("q币", "qb", "qq会员", "qq超级会员", "qq黄钻", "qq绿钻")
GAME_WORDS = ("点券", "钻石", "元宝", "金币", "游戏币", "皮肤", "区服", "创世结晶", "月卡", "战令", "王者", "和平精英", "原神")
# The shop charges the account itself.
DIRECT_WORDS = ("直充", "代充")
TOPUP_WORDS = (*DIRECT_WORDS, "充值", "到账")
# Prepaid cards: the buyer gets a code to redeem ("Steam 钱包充值卡", "话费充值卡"), unless
# the name says 直充 / 代充.
CARD_GOODS_WORDS = ("充值卡", "点卡", "购物卡", "e卡", "电子卡", "储值卡")
MANUAL_WORDS = ("人工", "手工代充", "手动")


@dataclass(frozen=True)
class Delivery:
    type: str  # DeliveryType value
    preset: str | None  # PRESETS key, None: the buyer fills nothing in

    @property
    def buyer_fields(self):
        return PRESETS[self.preset].buyer_fields() if self.preset else []

    @property
    def label(self):
        kind = {"card": "自动发卡密", "topup": "充值到账号", "manual": "人工发货"}[self.type]
        return f"{kind} · {PRESETS[self.preset].label}" if self.preset else kind


def _plain(text):
    return unicodedata.normalize("NFKC", text or "").lower().replace(" ", "")


def infer(name, category=""):
    """The delivery goods named ``name`` (in ``category``) most likely need:
    话费/流量 → top-up to a 手机号, Q币 → a QQ号, 直充/代充 → the account the
    name suggests; 卡密/激活码, prepaid cards (充值卡, 点卡) and anything else → a card code."""
    title, where = _plain(name), _plain(category)
    text = f"{where} {title}"
    if any(w in title for w in CARD_WORDS):
        return Delivery("card", None)
    if any(w in title for w in MANUAL_WORDS):
        return Delivery("manual", topup_preset(text))
    if any(w in title for w in CARD_GOODS_WORDS) and not any(w in title for w in DIRECT_WORDS):
        return Delivery("card", None)
    if any(w in text for w in PHONE_WORDS):
        return Delivery("topup", "phone")
    if any(w in text for w in QQ_WORDS):
        return Delivery("topup", "qq")
    if any(w in text for w in TOPUP_WORDS) or any(w in title for w in GAME_WORDS):
        return Delivery("topup", topup_preset(text))
    return Delivery("card", None)


def topup_preset(text):
    """The preset for goods charged to an account, from their name and category."""
    text = _plain(text)
    if any(w in text for w in PHONE_WORDS):
        return "phone"
    if any(w in text for w in QQ_WORDS):
        return "qq"
    if "游戏" in text or any(w in text for w in GAME_WORDS):
        return "game"
    if "邮箱" in text:
        return "email"
    return "account"


def preset_for(text):
    """A PRESETS key from a preset key, its label or an 充值账号格式 word; None when unknown."""
    word = _plain(text)
    if word in PRESETS:
        return word
    return PRESET_WORDS.get(word) or next((k for k, p in PRESETS.items() if _plain(p.label) == word), None)


def buyer_fields_for(text):
    """Buyer fields for an 充值账号格式 cell: a known preset, else one free account field labelled like the cell."""
    preset = preset_for(text)
    if preset:
        return PRESETS[preset].buyer_fields()
    label = str(text).strip()[:30] or "充值账号"
    return [{"key": "account", "label": label, "pattern": "", "hint": ""}]


def combine(preset_keys):
    """The buyer fields of several presets, in order; raises ValueError in Chinese when two ask for the same thing."""
    fields, owner = [], {}
    for key in preset_keys:
        for field in PRESETS[key].fields:
            if field["key"] in owner:
                raise ValueError(f"“{PRESETS[owner[field['key']]].label}”和“{PRESETS[key].label}”都是充值账号，只能选一个")
            owner[field["key"]] = key
            fields.append(dict(field))
    return fields


def presets_of(fields):
    """(preset keys, the other fields) of a product's buyer fields: what the form's checkboxes show."""
    fields = list(fields or [])
    keys = []
    for key, preset in PRESETS.items():
        n = len(preset.fields)
        for i in range(len(fields) - n + 1):
            if [dict(f) for f in fields[i:i + n]] == list(preset.fields):
                keys.append(key)
                del fields[i:i + n]
                break
    return keys, fields


def stock_mode_for(delivery_type, supplier_kind, *, has_stock):
    """Card-code goods of a shop that holds the codes count them; goods the supplier
    delivers follow its stock; top-up without a stock figure is unlimited."""
    if delivery_type == "card":
        return StockMode.CARDS.value if supplier_kind is SupplierKind.MANUAL else StockMode.SYNCED.value
    if supplier_kind is not SupplierKind.MANUAL or has_stock:
        return StockMode.SYNCED.value
    return StockMode.UNLIMITED.value
