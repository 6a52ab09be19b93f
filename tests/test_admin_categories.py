import pytest
import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import Category, ImportBatch
from kamen.services.suppliers import default_supplier
from tests.helpers import make_category, make_product


@pytest.fixture
def admin(auth):
    auth.login()
    return auth.client


def _new(admin, **data):
    return admin.post("/admin/categories/new", data={"parent_id": "0", "sort_order": "0", "is_visible": "y", **data})


def test_create_two_levels_and_list_them(admin):
    assert _new(admin, name="视频会员").status_code == 302
    root = db.session.scalar(sa.select(Category).filter_by(name="视频会员"))
    assert _new(admin, name="爱奇艺", parent_id=str(root.id)).status_code == 302
    page = admin.get("/admin/categories").get_data(as_text=True)
    assert page.index("视频会员") < page.index("爱奇艺")
    child = db.session.scalar(sa.select(Category).filter_by(name="爱奇艺"))
    assert child.parent_id == root.id


def test_third_level_and_duplicates_are_refused(admin):
    root = make_category("视频会员")
    child = make_category("爱奇艺", parent=root)
    response = _new(admin, name="黄金会员", parent_id=str(child.id))
    assert response.status_code == 400 and "选择无效" in response.get_data(as_text=True)
    response = _new(admin, name="视频会员")
    assert "同级下已有名为“视频会员”的分类" in response.get_data(as_text=True)
    response = _new(admin, name="")
    assert "请输入分类名称" in response.get_data(as_text=True)
    response = _new(admin, name="x", sort_order="abc")
    assert "排序（小的在前）必须是整数" in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Category)) == 2


def test_edit_category(admin):
    root = make_category("话费")
    response = admin.post(
        f"/admin/categories/{root.id}/edit", data={"name": "话费充值", "parent_id": "0", "sort_order": "5"}
    )
    assert response.status_code == 302
    db.session.expire_all()
    fresh = db.session.get(Category, root.id)
    assert (fresh.name, fresh.sort_order, fresh.is_visible) == ("话费充值", 5, False)


def test_delete_is_refused_while_in_use(admin):
    root = make_category("游戏点卡")
    child = make_category("腾讯游戏", parent=root)
    make_product(child)
    response = admin.post(f"/admin/categories/{root.id}/delete", follow_redirects=True)
    assert "还有子分类" in response.get_data(as_text=True)
    response = admin.post(f"/admin/categories/{child.id}/delete", follow_redirects=True)
    assert "还有 1 个商品" in response.get_data(as_text=True)
    empty = make_category("空分类")
    response = admin.post(f"/admin/categories/{empty.id}/delete", follow_redirects=True)
    assert "分类已删除" in response.get_data(as_text=True)
    assert db.session.get(Category, empty.id) is None


def test_hidden_category_is_not_in_the_shop(admin, client):
    make_category("隐藏分类", is_visible=False)
    make_category("显示分类")
    page = client.get("/").get_data(as_text=True)
    assert "显示分类" in page and "隐藏分类" not in page


def test_delete_is_refused_while_a_supplier_or_its_category_map_points_at_it(admin):
    by_default = make_category("默认分类")
    mapped = make_category("映射分类")
    supplier = default_supplier(db.session)
    supplier.default_category_id = by_default.id
    supplier.category_map = {"游戏/腾讯": mapped.id}
    db.session.commit()
    for category, reason in ((by_default, "设为新商品的默认分类"), (mapped, "游戏/腾讯")):
        response = admin.post(f"/admin/categories/{category.id}/delete", follow_redirects=True)
        assert response.status_code == 200
        assert reason in response.get_data(as_text=True)
        db.session.expire_all()
        assert db.session.get(Category, category.id) is not None


def test_delete_waits_for_an_open_import_batch_and_unlinks_finished_ones(admin):
    category = make_category("导入分类")
    supplier = default_supplier(db.session)
    batch = ImportBatch(supplier_id=supplier.id, category_id=category.id, filename="a.csv", status="ready")
    db.session.add(batch)
    db.session.commit()
    response = admin.post(f"/admin/categories/{category.id}/delete", follow_redirects=True)
    assert f"导入批次 #{batch.id}" in response.get_data(as_text=True)
    batch.status = "committed"
    db.session.commit()
    response = admin.post(f"/admin/categories/{category.id}/delete", follow_redirects=True)
    assert "分类已删除" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(ImportBatch, batch.id).category_id is None


def test_the_database_refuses_a_dangling_category_reference(app):
    """Foreign keys are enforced on SQLite too, as on PostgreSQL."""
    category = make_category("被引用")
    make_product(category)
    with pytest.raises(sa.exc.IntegrityError):
        db.session.execute(sa.delete(Category).where(Category.id == category.id))
        db.session.commit()
    db.session.rollback()
