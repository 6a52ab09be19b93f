"""Map a file's header cells to kamen's standard import fields."""
import hashlib
import re
import unicodedata
from dataclasses import dataclass, field


from kamen.services.importing.error_report import LINE_HEADER, REASON_HEADER


@dataclass(frozen=True)
class Field:
    key: str
    label: str
    required: bool = False
    synonyms: tuple = ()


FIELDS = (
    Field("code", "商品编码", True, ("商品ID", "商品编号", "编号", "编码", "SKU", "货号", "产品编码", "产品ID", "商品代码", "ID")),
    Field("name", "商品名称", True, ("名称", "商品名", "产品名称", "品名", "商品", "商品标题")),
    Field("category", "分类", False, ("类别", "商品分类", "类目", "品类", "所属分类")),
    Field("face_value", "面值", False, ("面额",)),
    Field("tier_label", "面值档位", False, ("档位", "面值范围", "充值档位", "面额范围")),
    Field("cost_price", "供货价", True, (
        "进价", "进货价", "成本价", "成本", "拿货价", "批发价", "结算价", "代理价", "供应价", "采购价", "价格", "单价",
    )),
    Field("market_price", "市场价", False, ("原价", "官方价", "市场价格")),
    # The file's price: the sale price under the 按文件 price basis, a suggestion under the others.
    Field("sale_price", "售价", False, (
        "建议零售价", "零售价", "建议售价", "销售价", "卖价", "本站价", "商城价", "销售价格",
    )),
    Field("stock", "库存", False, ("数量", "库存数量", "库存数", "剩余", "可用库存", "剩余库存")),
    Field("promo_price", "折扣价", False, ("活动价", "促销价", "特价", "优惠价")),
    Field("promo_start", "活动开始", False, ("活动开始时间", "开始时间", "活动开始日期", "促销开始", "开始日期")),
    Field("promo_end", "活动结束", False, ("活动结束时间", "结束时间", "活动结束日期", "促销结束", "结束日期")),
    Field("sync_stock", "需同步库存", False, ("同步库存", "是否同步库存")),
    Field("delivery_type", "发货方式", False, ("发货类型", "交付方式", "发货", "类型", "充值方式", "商品类型")),
    Field("account_format", "充值账号格式", False, ("账号格式", "充值账号", "充值账号类型", "账号类型")),
    Field("delivery_minutes", "预计到账(分钟)", False, ("到账时间", "到账时长", "预计到账时间", "发货时间")),
)
FIELDS_BY_KEY = {f.key: f for f in FIELDS}
REQUIRED = tuple(f.key for f in FIELDS if f.required)
FUZZY_CUTOFF = 60

_BRACKETS = re.compile(r"[(\[【（][^)\]】）]*[)\]】）]")
_DROP = re.compile(r"[\s*＊:：#]+")


def normalize_header(text):
    """'* 供货价（元）' -> '供货价': width, case, required marks and units removed."""
    text = unicodedata.normalize("NFKC", str(text)).lower()
    return _DROP.sub("", _BRACKETS.sub("", text))


def _vocabulary():
    words = {}
    for f in FIELDS:
        for word in (f.label, *f.synonyms):
            words.setdefault(normalize_header(word), f.key)
    return words


VOCABULARY = _vocabulary()  # normalized label or synonym -> field key
_LABELS = {normalize_header(f.label) for f in FIELDS}


@dataclass(frozen=True)
class ColumnMatch:
    column: int
    header: str
    key: str
    how: str  # template | exact | synonym | fuzzy | manual
    confidence: int  # 0-100; fuzzy matches wait for the admin's confirmation


@dataclass
class Mapping:
    headers: list
    matches: list = field(default_factory=list)

    @property
    def columns(self):
        """Field key -> column index, what the validator reads."""
        return {m.key: m.column for m in self.matches}

    @property
    def extra(self):
        """(column, header) of non-empty columns that will be ignored."""
        used = {m.column for m in self.matches}
        return [(i, h) for i, h in enumerate(self.headers) if i not in used and str(h).strip()]

    @property
    def missing(self):
        mapped = self.columns
        return [key for key in REQUIRED if key not in mapped]

    @property
    def needs_confirmation(self):
        return [m for m in self.matches if m.how == "fuzzy"]

    def missing_message(self):
        """The Chinese message that stops an import before any row work, or ''."""
        if not self.missing:
            return ""
        labels = "、".join(FIELDS_BY_KEY[key].label for key in self.missing)
        return f"缺少必填列：{labels}。请在列对应关系中指定，或检查表头所在行是否正确"

    def fingerprint(self):
        return header_fingerprint(self.headers)

    def to_template(self):
        """Normalized header -> field key (None = ignore), for a saved MappingTemplate."""
        by_column = {m.column: m.key for m in self.matches}
        return {
            normalize_header(h): by_column.get(i)
            for i, h in enumerate(self.headers)
            if normalize_header(h)
        }


# The columns the error file adds: a corrected error file maps like the supplier's own.
REPORT_HEADERS = frozenset(normalize_header(h) for h in (LINE_HEADER, REASON_HEADER))


def header_fingerprint(headers):
    """A stable hash of the normalized, non-empty headers.

    Sorted, so a supplier moving a column still gets its saved template:
    templates map header text, not positions.
    """
    cells = sorted(h for h in (normalize_header(h) for h in headers) if h and h not in REPORT_HEADERS)
    return hashlib.sha256("\x1f".join(cells).encode()).hexdigest()[:32]


def auto_map(headers, template=None, fuzzy_cutoff=FUZZY_CUTOFF):
    """Match headers: saved template, then exact labels, synonyms, fuzzy.

    Each field and each column is used at most once; the first column wins
    when two headers mean the same field.
    """
    mapping = Mapping(list(headers))
    normalized = [normalize_header(h) for h in headers]
    taken = set()
    free = [i for i, h in enumerate(normalized) if h and h not in REPORT_HEADERS]

    def assign(column, key, how, confidence):
        mapping.matches.append(ColumnMatch(column, str(headers[column]).strip(), key, how, confidence))
        taken.add(key)
        free.remove(column)

    for column in list(free):
        if template and normalized[column] in template:
            key = template[normalized[column]]
            if key is None:
                free.remove(column)  # the admin chose to ignore this column
            elif key in FIELDS_BY_KEY and key not in taken:
                assign(column, key, "template", 100)
    for column in list(free):
        key = VOCABULARY.get(normalized[column])
        if key and key not in taken:
            assign(column, key, "exact" if normalized[column] in _LABELS else "synonym", 100)
    from rapidfuzz import fuzz, process  # here: only a web or job process that maps headers needs it

    candidates = []
    for column in free:
        best = process.extractOne(normalized[column], VOCABULARY.keys(), scorer=fuzz.ratio, score_cutoff=fuzzy_cutoff)
        if best:
            candidates.append((best[1], column, VOCABULARY[best[0]]))
    for score, column, key in sorted(candidates, key=lambda c: (-c[0], c[1])):
        if key not in taken and column in free:
            assign(column, key, "fuzzy", round(score))
    mapping.matches.sort(key=lambda m: m.column)
    return mapping


def manual_map(headers, choices):
    """The admin's own choice, {column: field key or None}; raises ValueError in Chinese."""
    mapping = Mapping(list(headers))
    used = {}
    for column, key in sorted(choices.items()):
        if not key:
            continue
        if key not in FIELDS_BY_KEY:
            raise ValueError(f"未知字段：{key}")
        if key in used:
            raise ValueError(
                f"“{FIELDS_BY_KEY[key].label}”同时对应了第 {column_letter(used[key])} 列和第 {column_letter(column)} 列"
            )
        used[key] = column
        mapping.matches.append(ColumnMatch(column, str(headers[column]).strip(), key, "manual", 100))
    return mapping


def column_letter(index):
    """0 -> 'A', 27 -> 'AB': how the admin sees columns in Excel."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters
