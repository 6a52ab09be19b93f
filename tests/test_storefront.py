"""The storefront a customer trusts (issue 14): 店铺设置, pictures, search, breadcrumbs."""
import io
import struct
import zlib
from decimal import Decimal

import sqlalchemy as sa
from PIL import Image

from kamen.extensions import db
from kamen.models import Product, Upload
from kamen.services import uploads
from kamen.services.importing import committing, staging
from kamen.services.suppliers import default_supplier
from tests.helpers import form_values, make_category, make_product
from tests.order_helpers import buy_form, make_card_product
from tests.suppliers.simulator import SimProduct
from tests.sync_fixtures import make_supplier
from tests.test_syncing import ours, sync


def picture(size=(1600, 1200), fmt="JPEG", color=(200, 30, 30)):
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, fmt)
    return out.getvalue()


def bomb_png(width=30000, height=30000):
    """A tiny PNG whose header claims ``width`` × ``height`` pixels (a decompression bomb)."""
    data = bytearray(picture((1, 1), "PNG"))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr:ihdr + 17])))
    return bytes(data)


def upload_count():
    return db.session.scalar(sa.select(sa.func.count()).select_from(Upload))


def save_shop(client, **fields):
    data = {"name": "", "notice": "", "qq": "", "wechat": "", "email": "", "footer": "", **fields}
    return client.post("/admin/settings/shop", data=data, content_type="multipart/form-data")


# -- 店铺设置 ------------------------------------------------------------------

def test_shop_settings_show_on_every_shop_page(auth, client):
    auth.login()
    response = save_shop(client, name="小明卡铺", notice="国庆期间 24 小时发货", qq="123456789",
                         wechat="kefu_01", email="kefu@example.com", footer="本店只售正规渠道卡密",
                         logo=(io.BytesIO(picture((1200, 300), "PNG")), "logo.png"))
    assert response.status_code == 302
    product = make_card_product(codes=3, name="王者荣耀点券")

    home = client.get("/").get_data(as_text=True)
    assert "<title>小明卡铺</title>" in home
    assert "国庆期间 24 小时发货" in home and "本店只售正规渠道卡密" in home
    assert "QQ <b>123456789</b>" in home and "微信 <b>kefu_01</b>" in home and "kefu@example.com" in home
    logo_id = int(home.split('class="logo"')[1].split("/img/")[1].split('"')[0])
    logo = client.get(f"/img/{logo_id}")
    assert logo.mimetype == "image/webp"
    assert Image.open(io.BytesIO(logo.data)).size == (480, 120)  # fitted inside 480×160, proportions kept

    page = client.get(f"/p/{product.id}").get_data(as_text=True)
    assert page.count("123456789") == 2  # under the buy form and in the footer
    response = client.post(f"/p/{product.id}/buy", data=buy_form())
    order_page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "订单详情" in order_page and order_page.count("kefu@example.com") >= 2


def test_bad_shop_settings_save_nothing(auth, client):
    auth.login()
    assert save_shop(client, name="小明卡铺", qq="123456789").status_code == 302
    for fields, message in [
        ({"qq": "12ab"}, "QQ 号应为 5 到 12 位数字"),
        ({"email": "kefu"}, "邮箱格式不正确"),
        ({"name": "长" * 41}, "店铺名称最多 40 个字"),
        ({"logo": (io.BytesIO(b"not a picture at all"), "logo.png")}, "文件不是有效的图片"),
    ]:
        response = save_shop(client, **{"name": "新名字", **fields})
        assert response.status_code == 400 and message in response.get_data(as_text=True)
        assert "小明卡铺" in client.get("/").get_data(as_text=True)
    assert upload_count() == 0


def test_a_new_logo_replaces_the_old_one(auth, client):
    auth.login()
    save_shop(client, logo=(io.BytesIO(picture((300, 100), "PNG")), "a.png"))
    first = db.session.scalar(sa.select(Upload.id))
    save_shop(client, logo=(io.BytesIO(picture((300, 100), "JPEG")), "b.jpg"))
    assert upload_count() == 1 and client.get(f"/img/{first}").status_code == 404
    save_shop(client, remove_logo="1")
    assert upload_count() == 0
    assert 'class="logo" href="/">kamen 卡盟</a>' in client.get("/").get_data(as_text=True)


# -- pictures ------------------------------------------------------------------

def upload_picture(client, product, data, name="p.jpg"):
    return client.post(f"/admin/products/{product.id}/image", content_type="multipart/form-data",
                       data={"image": (io.BytesIO(data), name)})


def test_uploaded_product_picture_is_resized_and_served(auth, client):
    auth.login()
    product = make_product(make_category("游戏点卡"), name="王者荣耀点券")
    upload_picture(client, product, picture((2400, 1200)))
    db.session.refresh(product)
    served = client.get(f"/img/{product.image_id}")
    assert served.status_code == 200 and served.mimetype == "image/webp"
    assert "immutable" in served.headers["Cache-Control"]
    assert Image.open(io.BytesIO(served.data)).size == (800, 400)
    assert f'src="/img/{product.image_id}"' in client.get("/").get_data(as_text=True)
    assert f'src="/img/{product.image_id}"' in client.get(f"/p/{product.id}").get_data(as_text=True)

    client.post(f"/admin/products/{product.id}/image", data={"remove": "1"})
    db.session.refresh(product)
    assert product.image_id is None and upload_count() == 0


def test_bad_pictures_are_refused_and_nothing_is_kept(auth, client):
    auth.login()
    product = make_product(name="王者荣耀点券")
    for data, message in [
        (b"%PDF-1.4 not a picture", "文件不是有效的图片"),
        (bomb_png(), "图片尺寸过大"),
        (bomb_png(9000, 9000), "图片尺寸过大（9000×9000）"),
        (picture((10, 10))[:60], "图片文件已损坏"),
        (picture((10, 10), "BMP"), "图片格式不支持"),
        (b"\xff" * (5 * 1024 * 1024 + 1), "图片太大，上限 5 MB"),
    ]:
        response = upload_picture(client, product, data)
        assert response.status_code == 302
        assert message in client.get(response.headers["Location"]).get_data(as_text=True), message
    db.session.refresh(product)
    assert product.image_id is None and upload_count() == 0


def test_only_pictures_are_served(client):
    kept = uploads.save(db.session, io.BytesIO(b"QB10,9.60"), purpose="import", max_bytes=1 << 20)
    db.session.commit()
    assert client.get(f"/img/{kept.id}").status_code == 404
    assert client.get("/img/999999").status_code == 404


def test_without_a_picture_cards_show_the_categorys_placeholder(client):
    games, phone = make_category("游戏点卡"), make_category("话费充值")
    make_product(games, name="王者荣耀点券")
    make_product(phone, name="移动话费", cover_url="https://img.supplier.example/yd.png")
    home = client.get("/").get_data(as_text=True)
    assert f'class="pic ph ph-{games.id % 8}" aria-hidden="true">王</span>' in home
    assert 'src="https://img.supplier.example/yd.png"' in home and 'referrerpolicy="no-referrer"' in home


def test_the_suppliers_cover_comes_with_the_sync(app, simulator):
    from kamen.models import SupplierKind

    simulator.products["1001"].cover = "https://cdn.zhuzhan.example/cover/1001.png"
    simulator.products["1002"].cover = "javascript:alert(1)"
    supplier = make_supplier(simulator, kind=SupplierKind.ACGFAKA, auto_list=True)
    sync(supplier)
    got = ours(supplier)
    assert got["1001"].cover_url == "https://cdn.zhuzhan.example/cover/1001.png"
    assert got["1002"].cover_url is None
    simulator.products["1001"].cover = "https://cdn.zhuzhan.example/cover/1001-v2.png"
    sync(supplier, "full")
    assert ours(supplier)["1001"].cover_url.endswith("1001-v2.png")


def test_picture_addresses_from_suppliers():
    from kamen.suppliers.parsing import picture_address

    base = "https://zhuzhan.example"
    assert picture_address("/assets/cover/1.png", base) == "https://zhuzhan.example/assets/cover/1.png"
    assert picture_address(" https://cdn.example/a.jpg ", "http://x") == "https://cdn.example/a.jpg"
    for bad in ("", None, "http://cdn.example/a.jpg", "//evil.example/a.png", "javascript:alert(1)",
                'https://cdn.example/a.png" onerror="x', "https://cdn.example/" + "a" * 500):
        assert picture_address(bad, base) is None, bad
    assert picture_address("/a.png", "http://zhuzhan.example") is None  # the shop loads pictures over https only


# -- search --------------------------------------------------------------------

def found(client, q):
    page = client.get("/search", query_string={"q": q}).get_data(as_text=True)
    return page


def test_search_matches_every_word_and_pinyin(client):
    make_product(name="爱奇艺黄金会员 月卡")
    make_product(name="爱奇艺黄金会员 季卡")
    make_product(name="腾讯视频 月卡")
    make_product(name="腾讯Q币 10元", code="QB10")
    page = found(client, "爱奇艺 月卡")
    assert "爱奇艺黄金会员 月卡" in page and "季卡" not in page and "腾讯视频" not in page
    page = found(client, "qb")
    assert "腾讯Q币 10元" in page and "月卡" not in page
    assert "爱奇艺黄金会员 季卡" in found(client, "aiqiyi jika")
    assert "腾讯视频 月卡" in found(client, "TXSP")
    assert "腾讯Q币 10元" in found(client, "qb10")  # the code, in any case


def test_search_keys_follow_every_way_a_name_is_written(auth, client, simulator):
    auth.login()
    product = make_product(name="网易一卡通 10元")
    values = form_values(client.get(f"/admin/products/{product.id}/edit").get_data(as_text=True))
    values["name"] = "盛大一卡通 10元"
    assert client.post(f"/admin/products/{product.id}/edit", data=values).status_code == 302
    assert "盛大一卡通" in found(client, "sdykt") and "没有找到" in found(client, "wyykt")

    for name in ("爱奇艺黄金会员 月卡", "优酷VIP会员 月卡"):  # created, then renamed by next week's list
        csv = f"商品编码,商品名称,供货价,售价,库存\nIQY1,{name},17.00,19.90,50\n"
        batch = staging.create_batch(db.session, io.BytesIO(csv.encode()), "价格表.csv",
                                     supplier=default_supplier(db.session))
        batch = staging.analyze(db.session, batch.id)
        staging.apply_mapping(db.session, batch,
                              staging.StageOptions(choices={m["column"]: m["key"] for m in batch.match_info}))
        batch = staging.stage(db.session, batch.id)
        committing.request_commit(db.session, batch)
        assert committing.commit_batch(db.session, batch.id).status == "committed"
        assert name in found(client, "aqy yk" if name.startswith("爱奇艺") else "ykvip")
    assert "没有找到" in found(client, "aqy yk")

    simulator.products["1001"] = SimProduct(code="1001", name="和平精英 60点券", price=Decimal("5.80"),
                                            face_value=Decimal("6"), category=("游戏点卡",))
    sync(make_supplier(simulator, auto_list=True))
    assert "和平精英 60点券" in found(client, "hpjy")


# -- breadcrumbs and the shop frame --------------------------------------------

def test_breadcrumbs_show_the_whole_category_path(client):
    video = make_category("视频会员")
    iqiyi = make_category("爱奇艺", parent=video)
    product = make_product(iqiyi, name="爱奇艺黄金会员 月卡")
    page = client.get(f"/p/{product.id}").get_data(as_text=True)
    crumbs = page.split('class="crumbs"')[1].split("</nav>")[0]
    assert crumbs.index("首页") < crumbs.index(f'href="/c/{video.id}">视频会员') < crumbs.index(
        f'href="/c/{iqiyi.id}">爱奇艺') < crumbs.index("爱奇艺黄金会员 月卡")
    crumbs = client.get(f"/c/{iqiyi.id}").get_data(as_text=True).split('class="crumbs"')[1].split("</nav>")[0]
    assert f'href="/c/{video.id}">视频会员' in crumbs and 'aria-current="page">爱奇艺' in crumbs


def test_views_while_sold_out_are_counted_apart(client):
    product = make_product(stock=1)
    client.get(f"/p/{product.id}")
    product.stock = 0
    db.session.commit()
    client.get(f"/p/{product.id}")
    client.get(f"/p/{product.id}")
    db.session.expire_all()
    fresh = db.session.get(Product, product.id)
    assert (fresh.view_count, fresh.out_of_stock_views) == (3, 2)
