"""Security headers, and every back-office page rendered with hostile names."""
import io
import re
from decimal import Decimal

import pytest
import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import ApiToken, ImportBatch, ImportRow, Notification, Product, StockMode, Supplier, SyncRun
from kamen.models import AttemptStatus, CategoryRule, Coupon, DeliveryType, ForwardAttempt, LaunchCheck, LaunchRun, Order, ProductSource, SupplierKind
from kamen.services import api_tokens, ordering, stations
from kamen.services.alerts import save_settings as save_alert_settings
from kamen.services.products import INLINE_FIELDS
from tests.helpers import make_category, make_product
from tests.import_files import HEADER, messy_csv
from tests.order_helpers import make_channel
from tests.sync_fixtures import robot  # noqa: F401  (fixture)

# Breaks out of a JavaScript string ('), of an attribute ("), and opens a tag.
HOSTILE = "x');alert(1);('\"><script>alert(2)</script>"
RAW_MARKERS = ("<script>alert(2)", "\"><script", "');alert(1);('")


def assert_safe_html(page, where):
    """No hostile text left unescaped, and nothing a strict CSP would have to allow."""
    for marker in RAW_MARKERS:
        assert marker not in page, f"{where}: unescaped {marker!r}"
    for tag in re.findall(r"<script\b[^>]*>.*?</script\s*>", page, re.S | re.I):
        assert re.match(r"<script\b[^>]*\bsrc=", tag, re.I) and re.search(r">\s*</script", tag), (
            f"{where}: inline script {tag[:120]!r}")
    handler = re.search(r"<[^>]*\s(on[a-z]+|style|hx-on[^=\s]*)\s*=", page, re.I)
    assert handler is None, f"{where}: inline {handler.group(1)} attribute"
    assert "javascript:" not in page.lower(), f"{where}: javascript: URL"


# --- headers ---------------------------------------------------------------

def test_every_response_carries_the_security_headers(client, auth):
    auth.create()
    for path in ("/", "/admin/login", "/static/css/admin.css", "/no-such-page"):
        response = client.get(path)
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "style-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "Strict-Transport-Security" not in response.headers  # plain HTTP: no HSTS


def test_https_adds_hsts_and_secure_cookies(app, client, auth):
    app.config.update(HTTPS=True, SESSION_COOKIE_SECURE=True, REMEMBER_COOKIE_SECURE=True)
    response = client.get("/admin/login", base_url="https://localhost")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    auth.create()
    response = client.post("/admin/login", base_url="https://localhost",
                           headers={"Referer": "https://localhost/admin/login"}, data={"username": "boss", "password": "correct-horse-42", "remember": "y"})
    assert response.status_code == 302, response.get_data(as_text=True)
    cookies = response.headers.getlist("Set-Cookie")
    assert all("Secure" in c for c in cookies) and any(c.startswith("remember_token=") for c in cookies)


def test_only_the_mounted_job_dashboard_gets_a_relaxed_policy(client):
    from kamen import security

    assert security.policy_for("/admin/jobs") == security.RELAXED_THIRD_PARTY_POLICY
    assert security.policy_for("/admin/jobs/queues.json") == security.RELAXED_THIRD_PARTY_POLICY
    for path in ("/admin/jobsx", "/admin/", "/", "/admin/products"):
        assert security.policy_for(path) == security.POLICY
    relaxed = client.get("/admin/jobs/anything").headers["Content-Security-Policy"]
    assert "'unsafe-inline'" in relaxed and "frame-ancestors 'none'" in relaxed
    assert "'unsafe-inline'" not in client.get("/admin/").headers["Content-Security-Policy"]


# --- every admin page with hostile names ------------------------------------

@pytest.fixture
def hostile_world(auth, client):
    """One of everything, each with HOSTILE in every name it has; returns the path parameters."""
    auth.login()
    auth.create(HOSTILE, "hostile-password-1")  # listed on the 管理员 page
    category = make_category(HOSTILE)
    make_category(HOSTILE[::-1][:60], parent=category)
    supplier = Supplier(code="hostile", name=HOSTILE, kind=SupplierKind.MANUAL, category_map={HOSTILE: category.id})
    db.session.add(supplier)
    db.session.commit()
    product = make_product(category, name=HOSTILE, code=HOSTILE[:60], stock_mode=StockMode.CARDS, stock=0,
                           tier_label=HOSTILE[:32], remote_category=HOSTILE, supplier_id=supplier.id,
                           description=HOSTILE)
    make_product(category, name=HOSTILE, supplier_id=supplier.id, is_listed=False, pending_review=True,
                 description=HOSTILE, buyer_fields=[{"key": "account", "label": HOSTILE, "pattern": "", "hint": HOSTILE}])
    response = client.post(f"/admin/products/{product.id}/card-codes",
                           data={"codes": f"{HOSTILE}----{HOSTILE}\nplain-{HOSTILE}"})
    assert response.status_code in (200, 302), response.get_data(as_text=True)
    run = SyncRun(supplier_id=supplier.id, mode="full", status="failed", message=HOSTILE,
                  errors=[{"code": HOSTILE, "reason": HOSTILE}])
    db.session.add(run)
    db.session.add(Notification(kind="low_stock", title=HOSTILE, body=HOSTILE))
    rule = CategoryRule(keyword=HOSTILE[:40], category_id=category.id)
    db.session.add(rule)
    db.session.commit()
    station, _secret = stations.create_station(db.session, HOSTILE, Decimal("2"), Decimal("0"))
    token, _plain = api_tokens.create_token(db.session, HOSTILE[:60])
    save_alert_settings(db.session, {"email_to": HOSTILE, "smtp_host": HOSTILE, "smtp_user": HOSTILE,
                                     "webhook_url": "https://robot.example/send?key=" + HOSTILE})

    topup = make_product(category, name=HOSTILE, supplier_id=supplier.id, stock_mode=StockMode.UNLIMITED,
                         delivery_type=DeliveryType.TOPUP,
                         buyer_fields=[{"key": "account", "label": HOSTILE, "pattern": "", "hint": HOSTILE}])
    order_no = ordering.create_order(db.session, ordering.BuyRequest(
        product_id=topup.id, quantity="1", contact="13800138000", ip="127.0.0.1", fields={"account": HOSTILE[:40]}))
    order = db.session.scalar(sa.select(Order).filter_by(order_no=order_no))
    source = ProductSource(product_id=product.id, source_id=topup.id, position=1)
    db.session.add(source)
    # A supplier's answers end up on the order page's 一键代发 table.
    db.session.add(ForwardAttempt(order_id=order.id, attempt_no=1, supplier_id=supplier.id, code=HOSTILE[:64],
                                  idempotency_key=order_no, supplier_order_id=HOSTILE[:64],
                                  status=AttemptStatus.FAILED, max_unit_cost=Decimal("1"), message=HOSTILE))
    channel = make_channel()
    channel.name = HOSTILE[:60]
    coupon = Coupon(code="HOSTILE1", value=Decimal("1"), note=HOSTILE[:200])
    db.session.add(coupon)
    db.session.commit()

    launch = LaunchRun(label=HOSTILE[:120], status="done", total=1, done=1, failed=1, message=HOSTILE)
    db.session.add(launch)
    db.session.flush()
    db.session.add(LaunchCheck(run_id=launch.id, product_id=product.id, product_name=HOSTILE, why=HOSTILE[:60],
                               status="failed", problems=[HOSTILE], notes=[HOSTILE], order_no=HOSTILE[:32]))
    db.session.commit()
    ticket, shot = _hostile_ticket(order, supplier, station)

    rows = [[HOSTILE[:30], HOSTILE, "9.60", "10", "5", "", ""], ["H2", HOSTILE, "abc", "10", "5", "", ""]]
    batch = upload_for_preview(client, supplier, rows, f"{HOSTILE}.csv")
    row = db.session.scalar(sa.select(ImportRow).filter_by(batch_id=batch.id).order_by(ImportRow.id))
    # A file naming a category the shop lacks: the preview lists it, waiting.
    waiting = upload_for_preview(client, supplier, [["W1", "商品", "9.60", "10", "5", "", "", HOSTILE[:28]]],
                                 header=[*HEADER, "分类"])
    return {
        "category_id": category.id, "product_id": product.id, "supplier_id": supplier.id, "run_id": run.id,
        "station_id": station.id, "token_id": token.id, "source_row_id": source.id, "rule_id": rule.id,
        "order_id": order.id, "channel_id": channel.id, "test_id": launch.id, "ticket_id": ticket.id, "shot_id": shot.id,
        "coupon_id": coupon.id, "batch_id": batch.id, "row_id": row.id, "waiting_batch_id": waiting.id,
        "kind": "csv", "field": {"admin.product_cell": next(iter(INLINE_FIELDS)), "admin.import_cell": "name"},
    }


def _hostile_ticket(order, supplier, station):
    """A paid order's 售后 ticket with a hostile text, a screenshot and every kind of event,
    and a 分站's ticket (the 主站 side) next to it."""
    import io

    from kamen.models import OrderStatus, Ticket
    from kamen.services import aftersales, ticket_forwarding
    from tests.ticket_helpers import image_bytes

    db.session.execute(sa.update(Order).where(Order.id == order.id).values(status=OrderStatus.DELIVERED))
    db.session.commit()
    shot = aftersales.read_shot(io.BytesIO(image_bytes()), HOSTILE)
    ticket_no = aftersales.open_ticket(db.session, order.id, "not_received", HOSTILE, [shot])
    ticket = aftersales.by_number(db.session, ticket_no)
    aftersales.reply(db.session, ticket.id, HOSTILE, public=True)
    aftersales.reply(db.session, ticket.id, HOSTILE, public=False)
    ticket_forwarding.open_station_ticket(db.session, station, {"order_no": HOSTILE[:60], "ticket_no": HOSTILE[:30],
                                                                "kind": "other", "text": HOSTILE})
    attachment = aftersales.attachments(db.session, ticket.id)[0]
    return db.session.get(Ticket, ticket.id), attachment



def upload_for_preview(client, supplier, rows, filename="价格表.csv", header=HEADER):
    """A price list uploaded and mapped through the back office: its batch, at the preview."""
    data = messy_csv(rows=rows, header=header, encoding="utf-8")
    response = client.post("/admin/imports/new", content_type="multipart/form-data",
                           data={"supplier_id": str(supplier.id), "category_id": "",
                                 "file": (io.BytesIO(data), filename)})
    assert response.status_code == 302, response.get_data(as_text=True)
    batch = db.session.scalar(sa.select(ImportBatch).order_by(ImportBatch.id.desc()))
    mapping = {f"col_{m['column']}": m["key"] for m in batch.match_info}
    response = client.post(f"/admin/imports/{batch.id}/mapping", data={
        "mode": "upsert", "markup_percent": "3", "markup_fixed": "0", "markup_step": "0.01",
        "max_price_change": "30", **mapping})
    assert response.status_code == 302, response.get_data(as_text=True)
    return batch


def _admin_get_paths(app, values):
    """Every GET route of the back office, with its path filled from ``values``."""
    paths = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("admin.") or "GET" not in rule.methods:
            continue
        args = {}
        for name in rule.arguments:
            assert name in values, f"{rule.rule}: add an object for <{name}> to hostile_world"
            value = values[name]
            args[name] = value[rule.endpoint] if isinstance(value, dict) else value
        paths.append(rule.build(args)[1])
    return paths


# Query strings that show other states of the same pages.
EXTRA_VIEWS = ["/admin/imports/{batch_id}?step=mapping", "/admin/imports/{batch_id}?show=error",
               "/admin/tickets?status=all",
               "/admin/imports/{batch_id}?show=waiting", "/admin/imports/{waiting_batch_id}",
               "/admin/products?q=x", "/admin/products?category_id={category_id}"]


def test_every_admin_page_escapes_hostile_names_and_has_no_inline_script(app, client, hostile_world):
    paths = _admin_get_paths(app, hostile_world)
    paths += [p.format(**hostile_world) for p in EXTRA_VIEWS]
    assert len(paths) >= 20
    rendered = 0
    for path in paths:
        for htmx in (False, True):
            response = client.hx_get(path) if htmx else client.get(path)
            assert response.status_code < 500, path
            if response.mimetype == "text/html":
                assert_safe_html(response.get_data(as_text=True), f"{path} (htmx={htmx})")
                rendered += 1
    assert rendered >= 2 * len(paths) - 6  # all but the file downloads and the 售后 screenshot
    # The hostile names did reach the pages (escaped), so the test looked at them.
    page = client.get("/admin/categories").get_data(as_text=True)
    assert "x&#39;);alert(1);(&#39;&#34;&gt;&lt;script&gt;" in page
    assert 'data-confirm="确定删除分类“x&#39;);alert(1);(&#39;&#34;&gt;&lt;script&gt;' in page


def test_shop_pages_escape_hostile_names_too(app, client, hostile_world):
    product = db.session.get(Product, hostile_world["product_id"])
    for path in ("/", f"/c/{hostile_world['category_id']}", f"/p/{product.id}", "/search?q=" + HOSTILE):
        response = client.get(path)
        assert response.status_code in (200, 404), path
        assert_safe_html(response.get_data(as_text=True), path)


def test_templates_hold_no_inline_script_or_style(app):
    """Also the templates no test renders: every file under kamen/templates."""
    from pathlib import Path

    for path in Path(app.root_path, "templates").rglob("*.html"):
        assert_safe_html(path.read_text(), str(path))


# --- the robot webhook URL at rest ------------------------------------------

ALERT_FORM = {"webhook_kind": "wecom", "webhook_url": "", "dingtalk_secret": "", "email_to": "", "smtp_host": "",
              "smtp_port": "465", "smtp_user": "", "smtp_password": "", "smtp_ssl": "y",
              "sync_failure_alert_after": "3"}


def test_webhook_url_is_encrypted_masked_and_kept_when_left_blank(client, auth, robot):
    from kamen.models import Setting
    from kamen.secretbox import decrypt

    auth.login()
    response = client.post("/admin/settings/alerts", data={**ALERT_FORM, "webhook_url": robot.url})
    assert response.status_code == 302
    db.session.expire_all()
    stored = db.session.get(Setting, "alerts").value["webhook_url"]
    assert "access_token" not in stored and decrypt(stored) == robot.url

    page = client.get("/admin/settings/alerts").get_data(as_text=True)
    assert "access_token=tok" not in page
    host = robot.url.split("/")[2]
    assert f"已设置（http://{host}/…，密钥已隐藏）" in page

    # Saving the form again with the field blank keeps the URL; the robot still gets the test alert.
    assert client.post("/admin/settings/alerts", data={**ALERT_FORM, "sync_failure_alert_after": "5"}).status_code == 302
    client.post("/admin/settings/alerts/test")
    assert [path for path, _body in robot.received] == ["/robot/send?access_token=tok"]
