"""店铺设置 and product pictures: what a customer sees around the goods.

Settings live in the ``shop`` settings row; every shop worker re-reads them
with its category tree (catalog.shop_frame), so a save shows at once here and
within SHOP_CACHE_SECONDS elsewhere.
"""
import re

from kamen.models import Setting
from kamen.services import catalog, images, uploads

TEXT_FIELDS = {  # name: (label, max length)
    "name": ("店铺名称", 40),
    "notice": ("公告", 300),
    "qq": ("客服 QQ", 12),
    "wechat": ("客服微信", 40),
    "email": ("客服邮箱", 100),
    "footer": ("页脚文字", 200),
}
_QQ = re.compile(r"^[1-9]\d{4,11}$")
_WECHAT = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class ShopSettingsInvalid(ValueError):
    """``field`` names the input, str() is the Chinese message; nothing was saved."""

    def __init__(self, message, field=None):
        super().__init__(message)
        self.field = field


def current(session):
    """The stored settings as a dict (empty strings for what was never set)."""
    row = session.get(Setting, catalog.SHOP_SETTINGS_KEY)
    value = dict(row.value) if row else {}
    return {**{k: "" for k in TEXT_FIELDS}, "logo_id": None, **value}


def _clean(values):
    cleaned = {}
    for key, (label, limit) in TEXT_FIELDS.items():
        text = " ".join(str(values.get(key) or "").split()) if key != "notice" else str(values.get(key) or "").strip()
        if len(text) > limit:
            raise ShopSettingsInvalid(f"{label}最多 {limit} 个字", key)
        cleaned[key] = text
    if cleaned["qq"] and not _QQ.match(cleaned["qq"]):
        raise ShopSettingsInvalid("QQ 号应为 5 到 12 位数字", "qq")
    if cleaned["wechat"] and not _WECHAT.match(cleaned["wechat"]):
        raise ShopSettingsInvalid("微信号只能包含字母、数字、下划线和减号", "wechat")
    if cleaned["email"] and not _EMAIL.match(cleaned["email"]):
        raise ShopSettingsInvalid("邮箱格式不正确，例如 kefu@example.com", "email")
    return cleaned


def save(session, values, logo=None, remove_logo=False):
    """Save 店铺设置; ``logo`` a file stream (replaces the old logo). All or nothing."""
    try:
        stored = current(session)
        new = {**stored, **_clean(values)}
        old_logo = stored.get("logo_id")
        if logo is not None:
            try:
                new["logo_id"] = images.save(session, logo, "logo", "logo").id
            except images.ImageInvalid as exc:
                raise ShopSettingsInvalid(f"店铺 Logo：{exc}", "logo") from exc
        elif remove_logo:
            new["logo_id"] = None
        row = session.get(Setting, catalog.SHOP_SETTINGS_KEY)
        if row is None:
            session.add(Setting(key=catalog.SHOP_SETTINGS_KEY, value=new))
        else:
            row.value = new
        if old_logo and old_logo != new["logo_id"]:
            uploads.delete(session, old_logo)
        session.commit()
    except Exception:
        session.rollback()
        raise
    catalog.forget_shop_tree()
    return new


def set_product_image(session, product, stream, filename=""):
    """Check, resize and keep an uploaded picture for ``product`` (replacing its old one)."""
    try:
        upload = images.save(session, stream, "product_image", filename)
        old = product.image_id
        product.image_id = upload.id
        session.flush()
        if old:
            uploads.delete(session, old)
        session.commit()
    except Exception:
        session.rollback()
        raise
    return upload


def remove_product_image(session, product):
    """Back to the supplier's cover, or the category placeholder."""
    old = product.image_id
    if old:
        product.image_id = None
        session.flush()
        uploads.delete(session, old)
    session.commit()


