"""Categories without a detour (issue 13): the categories a file would create wait in
the preview for one click (or a choice each), near-duplicates are offered as the
existing one, keyword rules place goods in imports and syncs, and scripts choose too."""
import io
import json

import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import Category, CategoryRule, ImportRow, Product
from kamen.services.api_tokens import create_token
from kamen.services.demo import seed_demo
from tests.helpers import make_category
from tests.sync_fixtures import make_supplier, simulator  # noqa: F401
from tests.test_admin_imports import _fresh, _mapping_form, _two_sheet_xlsx, _upload, admin  # noqa: F401
from tests.test_syncing import ours, sync

LIST = ("商品编号,商品名称,类目,进货价,库存\n"
        "QB10,腾讯Q币 10元,游戏点卡/腾讯游戏,9.60,100\n"
        "JS1,迅游加速器 月卡,加速器,20.00,10\n"
        "WM1,美团外卖券 10元,外卖券,9.00,10\n"
        "WM2,饿了么外卖券 10元,外卖券,9.00,10\n"
        "QB30,腾讯Q币 30元,游戏点卡 / 腾讯 游戏,28.80,100\n"
        "WY10,网易一卡通 10元,游戏点卡/网易游戏,9.60,30\n")


def _shop():
    games = make_category("游戏点卡")
    tencent = make_category("腾讯游戏", parent=games)
    phone = make_category("话费充值", sort_order=5)
    return games, tencent, phone


def _staged(admin, csv=LIST):  # noqa: F811
    batch = _upload(admin, csv.encode())
    response = admin.post(f"/admin/imports/{batch.id}/mapping", data=_mapping_form(_fresh(batch)))
    assert response.status_code == 302, response.get_data(as_text=True)
    return _fresh(batch)


def _rows(batch):
    db.session.expire_all()
    return {r.code: r for r in db.session.scalars(sa.select(ImportRow).filter_by(batch_id=batch.id))}


def _category(name):
    return db.session.scalar(sa.select(Category).filter_by(name=name))


def test_new_categories_wait_for_one_click_and_go_after_the_existing_ones(admin):  # noqa: F811
    games, tencent, phone = _shop()
    batch = _staged(admin)
    # Nothing refused: the rows wait for their category.
    assert (batch.created, batch.failed) == (6, 0)
    rows = _rows(batch)
    assert rows["QB10"].category_path is None and rows["QB10"].values["category_id"] == tencent.id
    assert rows["WM1"].category_path == "外卖券" and rows["WY10"].category_path == "游戏点卡/网易游戏"
    assert set(batch.new_categories) == {"加速器", "外卖券", "游戏点卡/腾讯 游戏", "游戏点卡/网易游戏"}
    assert batch.new_categories["外卖券"]["rows"] == 2
    # "腾讯 游戏" is the shop's 腾讯游戏 written differently: offered as that one.
    assert batch.new_categories["游戏点卡/腾讯 游戏"]["similar"] == [tencent.id, "游戏点卡 / 腾讯游戏"]

    page = admin.get(f"/admin/imports/{batch.id}").get_data(as_text=True)
    assert "文件中有 4 个店铺还没有的分类" in page and "（名字相近）" in page and "新建“外卖券”" in page
    response = admin.post(f"/admin/imports/{batch.id}/commit", follow_redirects=True)
    assert "个店铺还没有的分类" in response.get_data(as_text=True) and _fresh(batch).status == "ready"

    response = admin.post(f"/admin/imports/{batch.id}/categories", data={"accept_all": "1"})
    assert response.status_code == 302
    batch = _fresh(batch)
    assert all(info["choice"] for info in batch.new_categories.values())
    booster, coupons, netease = _category("加速器"), _category("外卖券"), _category("网易游戏")
    assert booster.parent_id is None and coupons.parent_id is None and netease.parent_id == games.id
    # After the existing ones: 话费充值 sorts 5 at the top level, 腾讯游戏 0 under 游戏点卡.
    assert (booster.sort_order, coupons.sort_order, netease.sort_order) == (6, 7, 1)
    assert _category("腾讯 游戏") is None
    rows = _rows(batch)
    assert rows["QB30"].values["category_id"] == tencent.id and rows["QB30"].category_path is None
    assert rows["WM2"].values["category_id"] == coupons.id

    assert admin.post(f"/admin/imports/{batch.id}/commit").status_code == 302
    assert _fresh(batch).status == "committed"
    placed = dict(db.session.execute(sa.select(Product.code, Product.category_id)).all())
    assert placed == {"QB10": tencent.id, "JS1": booster.id, "WM1": coupons.id, "WM2": coupons.id,
                      "QB30": tencent.id, "WY10": netease.id}


def test_each_new_category_can_be_mapped_to_an_existing_one(admin):  # noqa: F811
    _games, tencent, phone = _shop()
    batch = _staged(admin)
    paths = list(batch.new_categories)
    form = {}
    for i, path in enumerate(paths, 1):
        form[f"path_{i}"] = path
        form[f"cat_{i}"] = str(phone.id) if path == "外卖券" else ""  # the others keep waiting
    admin.post(f"/admin/imports/{batch.id}/categories", data=form)
    batch = _fresh(batch)
    assert batch.new_categories["外卖券"]["choice"] == phone.id and _category("外卖券") is None
    assert _rows(batch)["WM1"].values["category_id"] == phone.id
    page = admin.get(f"/admin/imports/{batch.id}").get_data(as_text=True)
    assert "文件中有 3 个店铺还没有的分类" in page
    # The waiting rows of one path are one click away.
    page = admin.get(f"/admin/imports/{batch.id}?show=waiting&path=加速器").get_data(as_text=True)
    assert "迅游加速器" in page and "美团外卖券" not in page
    # A row fixed inline to the mapped name finds the admin's choice again.
    row = _rows(batch)["JS1"]
    admin.post(f"/admin/imports/{batch.id}/rows/{row.id}/cell/category", data={"value": "外卖券"}, htmx=True)
    assert _rows(batch)["JS1"].values["category_id"] == phone.id
    assert "加速器" not in _fresh(batch).new_categories  # nobody waits for it any more
    response = admin.post(f"/admin/imports/{batch.id}/categories", data={"path_1": "游戏点卡/网易游戏", "cat_1": "99999"},
                          follow_redirects=True)
    assert "所选分类不存在" in response.get_data(as_text=True)


def test_keyword_rules_managed_on_the_categories_page_place_imported_goods(admin):  # noqa: F811
    games, tencent, _phone = _shop()
    response = admin.post("/admin/categories/rules", data={"keyword": "Q币", "category_id": str(tencent.id)},
                          follow_redirects=True)
    assert "名称含“Q币”的商品放入“游戏点卡 / 腾讯游戏”" in response.get_data(as_text=True)
    for data, message in (({"keyword": " ", "category_id": str(tencent.id)}, "请填写关键词"),
                          ({"keyword": "q币", "category_id": str(games.id)}, "已有关键词“Q币”的规则"),
                          ({"keyword": "点券", "category_id": "0"}, "请选择要放入的分类")):
        page = admin.post("/admin/categories/rules", data=data, follow_redirects=True).get_data(as_text=True)
        assert message in page
    assert db.session.scalar(sa.select(sa.func.count()).select_from(CategoryRule)) == 1

    csv = "商品编号,商品名称,类目,进货价\nQB10,腾讯Q币 10元,游戏点卡,9.60\nWY10,网易一卡通,游戏点卡,9.60\n"
    rows = _rows(_staged(admin, csv))
    assert rows["QB10"].values["category_id"] == tencent.id  # the sub-category customers browse
    assert rows["WY10"].values["category_id"] == games.id

    # A category a rule points at is not deleted from under it.
    page = admin.post(f"/admin/categories/{tencent.id}/delete", follow_redirects=True).get_data(as_text=True)
    assert "分类规则“Q币”指向它" in page
    rule = db.session.scalar(sa.select(CategoryRule))
    admin.post(f"/admin/categories/rules/{rule.id}/delete")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(CategoryRule)) == 0


def test_scripts_choose_to_create_categories_or_not(admin, runner, tmp_path):  # noqa: F811
    _games, tencent, _phone = _shop()
    path = tmp_path / "list.csv"
    path.write_bytes(LIST.encode())
    result = json.loads(runner.invoke(args=["import-products", str(path)]).output)
    assert result["totals"]["failed"] == 5 and {e["kind"] for e in result["errors"]} == {"分类不存在"}
    assert _category("外卖券") is None

    result = runner.invoke(args=["import-products", str(path), "--create-categories", "--commit"])
    summary = json.loads(result.output)
    assert summary["status"] == "committed" and summary["totals"]["created"] == 6
    assert summary["new_categories"]["游戏点卡/腾讯 游戏"] == tencent.id and _category("外卖券") is not None

    _token, secret = create_token(db.session, "脚本")
    headers = {"Authorization": f"Bearer {secret}"}
    csv = "商品编号,商品名称,类目,进货价\nJS9,加速器年卡,游戏加速/年卡,90.00\n"
    response = admin.post("/api/import/v1/products", headers=headers, csrf=False, content_type="multipart/form-data",
                          data={"file": (io.BytesIO(csv.encode()), "p.csv"), "create_categories": "1", "commit": "1"})
    assert response.status_code == 202
    status = admin.get(response.get_json()["status_url"], headers=headers).get_json()
    assert status["status"] == "committed"
    assert _category("年卡").parent.name == "游戏加速"
    bad = admin.post("/api/import/v1/products", headers=headers, csrf=False, content_type="multipart/form-data",
                     data={"file": (io.BytesIO(csv.encode()), "p.csv"), "price_basis": "cheap"})
    assert bad.status_code == 400


def test_syncs_follow_the_keyword_rules_after_the_suppliers_own_map(app, simulator):  # noqa: F811
    special = make_category("特价专区")
    db.session.add(CategoryRule(keyword="测试商品3", category_id=special.id))
    db.session.commit()
    supplier = make_supplier(simulator, auto_list=True)
    sync(supplier)
    got = ours(supplier)
    assert got["1003"].category_id == special.id and got["1001"].category_id != special.id


def test_the_demo_shop_comes_with_rules_for_its_sub_categories(admin):  # noqa: F811
    seed_demo(db.session)
    seed_demo(db.session)  # twice: no duplicate rules
    page = admin.get("/admin/categories").get_data(as_text=True)
    assert "Q币" in page and "游戏点卡 / 腾讯游戏" in page
    csv = "商品编号,商品名称,类目,进货价\nQ1,腾讯Q币 50元,游戏点卡,48.50\nM1,移动话费 100元 快充,话费充值,97.50\n"
    rows = _rows(_staged(admin, csv))
    assert rows["Q1"].values["category_id"] == _category("腾讯游戏").id
    assert rows["M1"].values["category_id"] == _category("中国移动").id


def test_a_sheet_the_shop_has_no_category_for_becomes_one(admin):  # noqa: F811
    games = make_category("游戏点卡")
    batch = _fresh(_upload(admin, _two_sheet_xlsx(), name="多表.xlsx"))
    admin.post(f"/admin/imports/{batch.id}/mapping", data=_mapping_form(batch, sheet="*"))
    batch = _fresh(batch)
    assert batch.new_categories["话费充值"]["rows"] == 2 and batch.created == 3
    admin.post(f"/admin/imports/{batch.id}/categories", data={"accept_all": "1"})
    admin.post(f"/admin/imports/{batch.id}/commit")
    phone = _category("话费充值")
    placed = dict(db.session.execute(sa.select(Product.code, Product.category_id)).all())
    assert placed == {"G1": games.id, "P1": phone.id, "P2": phone.id} and phone.sort_order == games.sort_order + 1
