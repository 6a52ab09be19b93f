import pytest

from kamen.services.importing.mapping import (
    FIELDS,
    auto_map,
    column_letter,
    header_fingerprint,
    manual_map,
    normalize_header,
)

STANDARD = [f.label for f in FIELDS]


def test_standard_headers_map_exactly():
    mapping = auto_map(STANDARD)
    assert [(m.key, m.how, m.confidence) for m in mapping.matches] == [(f.key, "exact", 100) for f in FIELDS]
    assert mapping.missing == [] and mapping.extra == [] and mapping.needs_confirmation == []


def test_synonyms_and_decorated_headers():
    mapping = auto_map(["*商品ID", "品名", "进价（元）", "数量", "成本价", "备注", ""])
    assert mapping.columns == {"code": 0, "name": 1, "cost_price": 2, "stock": 3}
    assert {m.how for m in mapping.matches} == {"synonym"}
    # A second column meaning 供货价 is not silently used: it is listed as ignored.
    assert mapping.extra == [(4, "成本价"), (5, "备注")]


def test_fuzzy_matches_carry_a_confidence_to_confirm():
    mapping = auto_map(["商品编码", "产品名", "供货价格", "库存状态"])
    fuzzy = {m.header: (m.key, m.confidence) for m in mapping.needs_confirmation}
    assert fuzzy["产品名"] == ("name", 86)
    assert fuzzy["供货价格"] == ("cost_price", 86)
    assert 60 <= fuzzy["库存状态"][1] < 86
    assert mapping.missing == []


def test_missing_required_columns_message():
    mapping = auto_map(["商品名称", "售价", "运营商"])
    assert mapping.missing == ["code", "cost_price"]
    assert mapping.missing_message() == "缺少必填列：商品编码、供货价。请在列对应关系中指定，或检查表头所在行是否正确"
    assert mapping.extra == [(2, "运营商")]


def test_fingerprint_ignores_width_spaces_case_marks_and_order():
    a = header_fingerprint(["商品编码", "商品名称", "供货价", "SKU"])
    assert a == header_fingerprint(["供货价（元）", " 商品名称", "*商品编码", "ｓｋｕ", ""])
    assert a != header_fingerprint(["商品编码", "商品名称", "进价", "SKU"])
    assert len(a) == 32
    assert auto_map(["商品编码", "商品名称", "供货价", "SKU"]).fingerprint() == a


def test_saved_template_wins_and_can_ignore_columns():
    headers = ["型号", "商品名称", "价格", "成本"]
    saved = {"型号": "code", "价格": None, "成本": "cost_price"}
    mapping = auto_map(headers, template=saved)
    assert mapping.columns == {"code": 0, "name": 1, "cost_price": 3}
    assert [m.how for m in mapping.matches] == ["template", "exact", "template"]
    assert mapping.extra == [(2, "价格")]
    assert auto_map(headers, template=mapping.to_template()).columns == mapping.columns


def test_manual_mapping():
    mapping = manual_map(["a", "b", "c"], {0: "code", 1: None, 2: "cost_price"})
    assert mapping.columns == {"code": 0, "cost_price": 2}
    assert mapping.missing_message() == "缺少必填列：商品名称。请在列对应关系中指定，或检查表头所在行是否正确"
    with pytest.raises(ValueError, match="“供货价”同时对应了第 A 列和第 C 列"):
        manual_map(["a", "b", "c"], {0: "cost_price", 2: "cost_price"})


@pytest.mark.parametrize("index, letters", [(0, "A"), (25, "Z"), (26, "AA"), (27, "AB"), (701, "ZZ"), (702, "AAA")])
def test_column_letter(index, letters):
    assert column_letter(index) == letters


def test_normalize_header():
    assert normalize_header("  * 预计到账（分钟）：") == "预计到账"
    assert normalize_header("ＳＫＵ【必填】") == "sku"
