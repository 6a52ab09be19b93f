"""Category writes, with the two-level rule and safe deletes; where imported and
synced goods land (names, keyword rules, near-duplicates of existing names)."""
import re
import unicodedata

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from kamen.models import Category, CategoryRule, ImportBatch, Product, Supplier
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
    rules = session.scalars(sa.select(CategoryRule.keyword).where(CategoryRule.category_id == category.id)).all()
    if rules:
        return f"分类规则“{'、'.join(rules[:5])}”指向它，请先删除这些规则"
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
    """New categories go after their existing siblings."""
    parent_id = parent.id if parent else None
    siblings = Category.parent_id.is_(None) if parent is None else Category.parent_id == parent_id
    found = session.scalar(sa.select(Category).where(Category.name == name, siblings))
    if found is None:
        last = session.scalar(sa.select(sa.func.max(Category.sort_order)).where(siblings))
        found = Category(name=name, parent_id=parent_id, sort_order=0 if last is None else last + 1)
        session.add(found)
        session.flush()
    return found


_PATH_SPLIT = re.compile(r"\s*[/／>＞\\]\s*")


def split_path(text):
    """'游戏点卡 > 腾讯游戏' -> ('游戏点卡', '腾讯游戏'): at most two levels (deeper ones join the child)."""
    names = [p.strip()[:NAME_LENGTH] for p in _PATH_SPLIT.split(str(text or "").strip()) if p.strip()]
    if len(names) > 2:
        names = [names[0], " / ".join(names[1:])[:NAME_LENGTH]]
    return tuple(names)


def path_key(text):
    """The canonical "父/子" text of a category path written any way."""
    return "/".join(split_path(text))


_NOISE = re.compile(r"[\s·・_\-]+")


def _plain(text):
    return _NOISE.sub("", unicodedata.normalize("NFKC", text).lower())


# -- keyword rules ------------------------------------------------------------

class RuleInvalid(ValueError):
    pass


def rules(session):
    return session.scalars(sa.select(CategoryRule).order_by(CategoryRule.keyword)).all()


def add_rule(session, keyword, category_id):
    keyword = unicodedata.normalize("NFKC", keyword or "").strip()
    if not keyword:
        raise RuleInvalid("请填写关键词，如：Q币")
    if len(keyword) > 40:
        raise RuleInvalid("关键词最多 40 个字")
    if session.get(Category, category_id or 0) is None:
        raise RuleInvalid("请选择要放入的分类")
    taken = session.scalar(sa.select(CategoryRule).where(sa.func.lower(CategoryRule.keyword) == keyword.lower()))
    if taken is not None:
        raise RuleInvalid(f"已有关键词“{taken.keyword}”的规则，请先删除它")
    rule = CategoryRule(keyword=keyword, category_id=category_id)
    session.add(rule)
    session.commit()
    return rule


def delete_rule(session, rule):
    session.delete(rule)
    session.commit()


class CategoryLookup:
    """Where goods land by name, read once per import or sync page: keyword rules
    (the longest keyword in the product's name wins), then a category named like
    the source's ("父/子" or, unambiguous, "子"), then ``chosen`` paths an admin
    mapped during this import."""

    def __init__(self, session, chosen=None):
        self.names = name_lookup(session)
        self.rules = sorted(((_plain(r.keyword), r.category_id) for r in rules(session) if _plain(r.keyword)),
                            key=lambda r: -len(r[0]))
        # One search finds the longest keyword starting at each place in a name (an import asks
        # for each row): the lookahead lets keywords overlap, the longest is tried first.
        self._keywords = re.compile(
            "(?=(" + "|".join(re.escape(k) for k, _ in self.rules) + "))") if self.rules else None
        self._rank = {}  # keyword -> (its place in self.rules, category id); the first of equal keywords
        for place, (keyword, category_id) in enumerate(self.rules):
            self._rank.setdefault(keyword, (place, category_id))
        self.chosen = dict(chosen or {})
        self._found = {}

    def get(self, text):
        """A category by its source name or path, or None (each text worked out once: an
        import asks for each of its rows)."""
        if not text:
            return None
        if text in self._found:
            return self._found[text]
        key = path_key(text)
        found = self._found[text] = self.chosen.get(key) or self.names.get(key) or self.names.get(str(text).strip())
        return found

    def by_rule(self, name):
        if self._keywords is None or not name:
            return None
        found = self._keywords.findall(_plain(name))
        if not found:
            return None
        return min(map(self._rank.__getitem__, found))[1]


def similar_category(session, path):
    """An existing category a new path most likely means ("腾讯 游戏" for 腾讯游戏,
    "点卡/腾讯游戏" for 游戏点卡/腾讯游戏), as (id, full name), or None."""
    from rapidfuzz import fuzz  # here: only imports and syncs that create categories need it

    names = split_path(path)
    if not names:
        return None
    wanted_full, wanted_leaf = _plain("/".join(names)), _plain(names[-1])
    best, best_score = None, 0
    for category in session.scalars(sa.select(Category)):
        full = _plain(f"{category.parent.name}/{category.name}" if category.parent_id else category.name)
        leaf = _plain(category.name)
        if wanted_full == full:
            return category.id, category.full_name
        score = max(fuzz.ratio(wanted_full, full), fuzz.ratio(wanted_leaf, leaf) if len(names) == 1 or
                    category.parent_id else 0)
        if wanted_leaf == leaf and (len(names) == 1 or category.parent_id):
            score = max(score, 95)
        if score > best_score:
            best, best_score = category, score
    if best is not None and best_score >= 85:
        return best.id, best.full_name
    return None
