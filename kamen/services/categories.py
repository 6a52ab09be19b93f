"""Category writes, with the two-level rule and safe deletes."""
import sqlalchemy as sa

from kamen.models import Category, Product
from kamen.services.catalog import forget_shop_tree


class CategoryInvalid(ValueError):
    pass


def save(session, category, *, name, parent_id, sort_order, is_visible):
    if parent_id is not None:
        parent = session.get(Category, parent_id)
        if parent is None or parent.parent_id is not None:
            raise CategoryInvalid("上级分类必须是一级分类（最多两级）")
        if category is not None and category.children:
            raise CategoryInvalid("该分类下还有子分类，不能再放到其他分类下面")
    clash = sa.select(Category.id).where(
        Category.name == name,
        Category.parent_id.is_(None) if parent_id is None else Category.parent_id == parent_id,
    )
    if category is not None:
        clash = clash.where(Category.id != category.id)
    if session.scalar(clash) is not None:
        raise CategoryInvalid(f"同级下已有名为“{name}”的分类")
    if category is None:
        category = Category()
        session.add(category)
    category.name = name
    category.parent_id = parent_id
    category.sort_order = sort_order
    category.is_visible = is_visible
    session.commit()
    forget_shop_tree()
    return category


def delete(session, category):
    if category.children:
        raise CategoryInvalid(f"“{category.name}”下还有子分类，请先删除或移动子分类")
    used = session.scalar(sa.select(sa.func.count()).where(Product.category_id == category.id))
    if used:
        raise CategoryInvalid(f"“{category.name}”下还有 {used} 个商品，请先移动这些商品")
    session.delete(category)
    session.commit()
    forget_shop_tree()


def product_counts(session):
    rows = session.execute(sa.select(Product.category_id, sa.func.count()).group_by(Product.category_id))
    return dict(rows.all())


def category_choices(session):
    """(id, "父 / 子") for every category, parents first: the options of a category select."""
    categories = session.scalars(sa.select(Category).order_by(Category.parent_id.nullsfirst(), Category.sort_order))
    return [(c.id, c.full_name) for c in categories]
