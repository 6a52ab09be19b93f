"""The demo catalog: what a new shop looks like with realistic goods."""
import secrets
from datetime import timedelta
from decimal import Decimal as D

import sqlalchemy as sa

from kamen.models import Category, CategoryRule, DeliveryType, Product, StockMode
from kamen.services import card_codes
from kamen.services.suppliers import default_supplier
from kamen.timeutil import utcnow

PHONE = [{"key": "account", "label": "充值手机号", "pattern": r"^1[3-9]\d{9}$", "hint": "11 位手机号"}]
QQ = [{"key": "account", "label": "QQ号", "pattern": r"^[1-9]\d{4,11}$", "hint": "5-12 位数字"}]
GAME = [
    {"key": "account", "label": "游戏账号", "pattern": "", "hint": ""},
    {"key": "region", "label": "区服", "pattern": "", "hint": "如 微信区/QQ区"},
]
VIDEO = [{"key": "account", "label": "充值账号", "pattern": r"^(1[3-9]\d{9}|[1-9]\d{4,11})$", "hint": "手机号或QQ号"}]

CATEGORIES = {
    "游戏点卡": ["腾讯游戏", "网易游戏", "米哈游"],
    "话费充值": ["中国移动", "中国联通", "中国电信"],
    "视频会员": ["爱奇艺", "腾讯视频", "优酷", "哔哩哔哩"],
    "音乐会员": [],
    "礼品卡密": ["Steam", "App Store"],
}

# code, name, category, face, tier, cost, market, sale, stock mode, stock, delivery, fields, minutes
PRODUCTS = [
    ("QB10", "腾讯Q币 10元", "腾讯游戏", "10", "10元", "9.60", "10.00", "9.90", "unlimited", 0, "topup", QQ, 5),
    ("QB30", "腾讯Q币 30元", "腾讯游戏", "30", "30元", "28.80", "30.00", "29.60", "unlimited", 0, "topup", QQ, 5),
    ("QB100", "腾讯Q币 100元", "腾讯游戏", "100", "100元", "96.00", "100.00", "98.50", "unlimited", 0, "topup", QQ, 5),
    ("WZRY60", "王者荣耀 60点券", "腾讯游戏", "6", "6元", "5.70", "6.00", "5.95", "synced", 500, "topup", GAME, 10),
    ("HPJY60", "和平精英 60点券", "腾讯游戏", "6", "6元", "5.72", "6.00", "5.95", "synced", 6, "topup", GAME, 10),
    ("WY50", "网易一卡通 50元", "网易游戏", "50", "50元", "47.50", "50.00", "48.80", "cards", 120, "card", [], 1),
    ("WY100", "网易一卡通 100元", "网易游戏", "100", "100元", "95.00", "100.00", "97.50", "cards", 3, "card", [], 1),
    ("YS648", "原神 创世结晶 6480", "米哈游", "648", "648元", "615.00", "648.00", "628.00", "synced", 40, "topup", GAME, 30),
    ("YS68", "原神 创世结晶 680", "米哈游", "68", "68元", "64.50", "68.00", "66.00", "synced", 0, "topup", GAME, 30),
    ("YD30", "中国移动话费 30元", "中国移动", "30", "30元", "29.10", "30.00", "29.70", "unlimited", 0, "topup", PHONE, 60),
    ("YD50", "中国移动话费 50元", "中国移动", "50", "50元", "48.50", "50.00", "49.50", "unlimited", 0, "topup", PHONE, 60),
    ("YD100", "中国移动话费 100元", "中国移动", "100", "100元", "97.00", "100.00", "98.80", "unlimited", 0, "topup", PHONE, 60),
    ("LT50", "中国联通话费 50元", "中国联通", "50", "50元", "48.40", "50.00", "49.40", "unlimited", 0, "topup", PHONE, 60),
    ("LT100", "中国联通话费 100元", "中国联通", "100", "100元", "96.80", "100.00", "98.60", "unlimited", 0, "topup", PHONE, 60),
    ("DX50", "中国电信话费 50元", "中国电信", "50", "50元", "48.60", "50.00", "49.50", "unlimited", 0, "topup", PHONE, 60),
    ("DX100", "中国电信话费 100元", "中国电信", "100", "100元", "97.20", "100.00", "98.90", "unlimited", 0, "topup", PHONE, 60),
    ("IQY-M", "爱奇艺黄金会员 月卡", "爱奇艺", "30", "月卡", "17.50", "30.00", "19.90", "synced", 260, "topup", VIDEO, 5),
    ("IQY-Y", "爱奇艺黄金会员 年卡", "爱奇艺", "248", "年卡", "148.00", "248.00", "158.00", "synced", 35, "topup", VIDEO, 5),
    ("TXSP-M", "腾讯视频VIP 月卡", "腾讯视频", "30", "月卡", "18.00", "30.00", "20.50", "synced", 180, "topup", VIDEO, 5),
    ("TXSP-Q", "腾讯视频VIP 季卡", "腾讯视频", "68", "季卡", "52.00", "68.00", "56.00", "synced", 8, "topup", VIDEO, 5),
    ("YK-M", "优酷VIP 月卡", "优酷", "25", "月卡", "14.80", "25.00", "16.90", "cards", 75, "card", [], 1),
    ("BILI-M", "哔哩哔哩大会员 月卡", "哔哩哔哩", "25", "月卡", "15.80", "25.00", "17.80", "synced", 90, "topup", VIDEO, 10),
    ("BILI-Y", "哔哩哔哩大会员 年卡", "哔哩哔哩", "168", "年卡", "128.00", "168.00", "138.00", "synced", 12, "topup", VIDEO, 10),
    ("QQMUSIC-M", "QQ音乐绿钻豪华版 月卡", "音乐会员", "18", "月卡", "11.20", "18.00", "12.80", "synced", 300, "topup", QQ, 5),
    ("WYMUSIC-M", "网易云音乐黑胶VIP 月卡", "音乐会员", "15", "月卡", "9.80", "15.00", "11.50", "cards", 60, "card", [], 1),
    ("KUGOU-M", "酷狗音乐豪华VIP 月卡", "音乐会员", "15", "月卡", "9.50", "15.00", "10.90", "synced", 20, "manual", QQ, 120),
    ("STEAM-50", "Steam 钱包充值卡 50元", "Steam", "50", "50元", "47.00", "50.00", "48.90", "cards", 45, "card", [], 1),
    ("STEAM-100", "Steam 钱包充值卡 100元", "Steam", "100", "100元", "94.00", "100.00", "97.50", "cards", 0, "card", [], 1),
    ("APPLE-100", "App Store 充值卡 100元", "App Store", "100", "100元", "96.50", "100.00", "98.80", "cards", 30, "card", [], 1),
    ("APPLE-500", "App Store 充值卡 500元", "App Store", "500", "500元", "482.00", "500.00", "492.00", "cards", 9, "card", [], 1),
]

# Keyword rules (分类规则) so imported and synced goods land in the sub-category customers browse.
RULES = {"Q币": "腾讯游戏", "王者荣耀": "腾讯游戏", "和平精英": "腾讯游戏", "原神": "米哈游", "网易一卡通": "网易游戏",
         "移动话费": "中国移动", "联通话费": "中国联通", "电信话费": "中国电信", "Steam": "Steam"}


PINNED = ("QB10", "YD100", "IQY-M", "WZRY60")  # 置顶 in their categories and, in this order, the 推荐位
PROMOS = {"IQY-M": "18.80", "TXSP-M": "19.50", "YD50": "49.20"}
MODES = {"unlimited": StockMode.UNLIMITED, "synced": StockMode.SYNCED, "cards": StockMode.CARDS}
DELIVERY = {"topup": DeliveryType.TOPUP, "card": DeliveryType.CARD, "manual": DeliveryType.MANUAL}


def seed_demo(session):
    """Create or refresh the demo catalog; safe to run twice."""
    supplier = default_supplier(session)
    category_ids = {name: c.id for name, c in _seed_categories(session).items()}
    _seed_rules(session, category_ids)
    existing = {p.code: p for p in session.scalars(sa.select(Product).where(Product.supplier_id == supplier.id))}
    now = utcnow()
    for n, row in enumerate(PRODUCTS):
        code, name, cat, face, tier, cost, market, sale, mode, stock, delivery, fields, minutes = row
        product = existing.get(code) or Product(supplier_id=supplier.id, code=code)
        product.name = name
        product.category_id = category_ids[cat]
        product.face_value, product.tier_label = D(face), tier
        product.cost_price, product.market_price, product.sale_price = D(cost), D(market), D(sale)
        product.stock_mode = MODES[mode]
        if product.stock_mode is not StockMode.CARDS:
            product.stock = stock
        elif product.id is None:
            product.stock = 0  # a card-code product's stock is its codes (added below)
        product.delivery_type, product.buyer_fields, product.delivery_minutes = DELIVERY[delivery], fields, minutes
        product.is_pinned = code in PINNED
        product.featured_rank = PINNED.index(code) + 1 if code in PINNED else None
        product.sort_weight = len(PRODUCTS) - n
        product.sales_count = (n * 37) % 500
        product.description = f"{name}，{DELIVERY[delivery].label}，正规渠道，售后无忧。"
        promo = PROMOS.get(code)
        product.promo_price = D(promo) if promo else None
        product.promo_start = now - timedelta(days=1) if promo else None
        product.promo_end = now + timedelta(days=7) if promo else None
        session.add(product)
    session.commit()
    for code, *_rest, mode, stock, _delivery, _fields, _minutes in PRODUCTS:
        if mode == "cards":
            _demo_codes(session, code, supplier.id, stock)
    return len(PRODUCTS)


def _demo_codes(session, code, supplier_id, wanted):
    """Enough demo card codes for the listed stock, so the demo shop can really sell them."""
    product = session.scalar(sa.select(Product).where(Product.supplier_id == supplier_id, Product.code == code))
    available = card_codes.status_counts(session, product.id)[card_codes.AVAILABLE]
    if available < wanted:
        fresh = "\n".join(f"{code}-DEMO-{secrets.token_hex(6).upper()}" for _ in range(wanted - available))
        card_codes.upload_text(session, product, fresh)
    product.stock = card_codes.status_counts(session, product.id)[card_codes.AVAILABLE]
    session.commit()


def _seed_rules(session, category_ids):
    have = set(session.scalars(sa.select(CategoryRule.keyword)))
    session.add_all(CategoryRule(keyword=k, category_id=category_ids[c]) for k, c in RULES.items() if k not in have)
    session.flush()


def _seed_categories(session):
    by_name = {}
    for order, (root_name, children) in enumerate(CATEGORIES.items()):
        root = _category(session, root_name, None, order)
        by_name[root_name] = root
        for child_order, child_name in enumerate(children):
            by_name[child_name] = _category(session, child_name, root.id, child_order)
    return by_name


def _category(session, name, parent_id, order):
    cond = Category.parent_id.is_(None) if parent_id is None else Category.parent_id == parent_id
    category = session.scalar(sa.select(Category).where(Category.name == name, cond))
    if category is None:
        category = Category(name=name, parent_id=parent_id, sort_order=order)
        session.add(category)
        session.flush()
    return category
