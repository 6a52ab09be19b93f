"""Category writes, with the two-level rule and safe deletes."""
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from kamen.models import Category, ImportBatch, Product, Supplier
from kamen.services.catalog import forget_shop_tree

# A batch in these states no longer reads its target category.
_FINISHED_BATCH = ("committed", "undone")


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
    """Refused, with the reason, while anything still points at the category."""
    reason = _in_use(session, category)
    if reason:
        raise CategoryInvalid(f"不能删除“{category.name}”：{reason}")
    session.execute(
        sa.update(ImportBatch)
        .where(ImportBatch.category_id == category.id, ImportBatch.status.in_(_FINISHED_BATCH))
        .values(category_id=None)
    )
    session.delete(category)
    try:
        session.commit()
    except IntegrityError as exc:  # something newer than this check points at it
        session.rollback()
        raise CategoryInvalid(f"不能删除“{category.name}”：仍有数据引用该分类，请先解除引用") from exc
    forget_shop_tree()


def _in_use(session, category):
    if category.children:
        return "下面还有子分类，请先删除或移动子分类"
    used = session.scalar(sa.select(sa.func.count()).where(Product.category_id == category.id))
    if used:
        return f"下面还有 {used} 个商品，请先移动这些商品"
    suppliers = session.scalars(sa.select(Supplier).order_by(Supplier.id)).all()
    defaults = [s.name for s in suppliers if s.default_category_id == category.id]
    if defaults:
        return f"货源“{'、'.join(defaults)}”把它设为新商品的默认分类，请先在货源设置中更换"
    mapped = [f"{s.name}（{path}）" for s in suppliers for path, cid in (s.category_map or {}).items()
              if cid == category.id]
    if mapped:
        return f"货源分类映射 {'、'.join(mapped[:5])} 指向它，请先修改这些映射"
    batches = session.scalars(
        sa.select(ImportBatch.id).where(ImportBatch.category_id == category.id,
                                        ImportBatch.status.not_in(_FINISHED_BATCH))
    ).all()
    if batches:
        return f"导入批次 {'、'.join(f'#{b}' for b in batches[:5])} 要导入到该分类，请先提交或撤销这些批次"
    return None


def product_counts(session):
    rows = session.execute(sa.select(Product.category_id, sa.func.count()).group_by(Product.category_id))
    return dict(rows.all())


def category_choices(session):
    """(id, "父 / 子") for every category, parents first: the options of a category select."""
    categories = session.scalars(sa.select(Category).order_by(Category.parent_id.nullsfirst(), Category.sort_order))
    return [(c.id, c.full_name) for c in categories]


def name_lookup(session):
    """{"名称" or "父/子": id} for every category a name picks out unambiguously
    (how imports and syncs place goods whose source names a category)."""
    cats = session.execute(sa.select(Category.id, Category.name, Category.parent_id)).all()
    names = {c.id: c.name for c in cats}
    lookup, ambiguous = {}, set()
    for c in cats:
        for key in filter(None, (c.name, f"{names.get(c.parent_id)}/{c.name}" if c.parent_id else None)):
            if key in lookup and lookup[key] != c.id:
                ambiguous.add(key)
            lookup[key] = c.id
    return {k: v for k, v in lookup.items() if k not in ambiguous}


NAME_LENGTH = Category.__table__.c.name.type.length


def ensure_path(session, path):
    """The category for a remote path, created if missing: ("游戏点卡", "腾讯游戏") is
    a child 腾讯游戏 under a top-level 游戏点卡; deeper levels join the child's name.
    Flushes, does not commit; call forget_shop_tree() after committing."""
    names = [str(p).strip()[:NAME_LENGTH] for p in path if str(p).strip()]
    if not names:
        raise CategoryInvalid("货源分类为空")
    parent = _find_or_add(session, names[0], None)
    if len(names) == 1:
        return parent
    return _find_or_add(session, " / ".join(names[1:])[:NAME_LENGTH], parent)


def _find_or_add(session, name, parent):
    parent_id = parent.id if parent else None
    found = session.scalar(sa.select(Category).where(
        Category.name == name, Category.parent_id.is_(None) if parent is None else Category.parent_id == parent_id))
    if found is None:
        found = Category(name=name, parent_id=parent_id)
        session.add(found)
        session.flush()
    return found
