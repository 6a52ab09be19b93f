import pytest

from kamen.services.importing.errors import ImportFileError
from kamen.services.importing.header import cell_text, find_header_row, locate_table


def test_messy_supplier_price_list(make_xlsx, read_rows):
    path = make_xlsx(
        [
            ["XX货源价格表 2026-11"],
            ["联系QQ：123456  电话：13800000000", None, None, "价格随时变动"],
            [],
            ["商品ID", "商品名称", "进价", "库存"],
            [1001, "腾讯QQ会员", 9.5, 100],
            [],
            [1002, "爱奇艺黄金会员", 15, 5],
            ["【以下为话费】"],
            [1003, "移动话费 50元", 49.2, 0],
            ["合计", None, 73.7, 105],
            ["注：价格以实时为准"],
        ],
        merged={"商品": ["A1:D1", "A11:D11"]},
    )
    table = locate_table(read_rows(path))
    assert table.header_index == 3
    assert table.headers == ["商品ID", "商品名称", "进价", "库存"]
    rows = list(table.rows)
    assert [(r.line, r.skip is None) for r in rows] == [
        (5, True), (7, True), (8, False), (9, True), (10, False), (11, False)
    ]
    assert [r.cells[1] for r in rows if r.skip is None] == ["腾讯QQ会员", "爱奇艺黄金会员", "移动话费 50元"]
    assert rows[2].skip == "只有一个单元格的说明行，不是商品，已跳过"
    assert rows[4].skip == "说明或合计行，不是商品，已跳过"


def test_two_row_header_under_merged_group_cells(make_xlsx, read_rows):
    path = make_xlsx(
        [
            ["某某卡盟供货单"],
            ["商品编码", "商品名称", "价格", None, "库存"],
            [None, None, "供货价", "售价", None],
            ["A01", "王者荣耀 60点券", 5.8, 6, 999],
        ],
        merged={"商品": ["A1:E1", "A2:A3", "B2:B3", "C2:D2", "E2:E3"]},
    )
    rows = read_rows(path)
    for table in (locate_table(rows), locate_table(rows, header_row=2)):
        assert table.header_index == 2
        assert table.headers == ["商品编码", "商品名称", "供货价", "售价", "库存"]
        assert [r.line for r in table.rows] == [4]


def test_admin_overrides_the_header_row():
    rows = [["商品编码", "商品名称", "供货价"], ["编号", "名称", "进价"], ["1", "x", "2"]]
    table = locate_table(rows, header_row=1)
    assert table.headers == ["编号", "名称", "进价"]
    assert [r.line for r in table.rows] == [3]


def test_override_pointing_at_a_blank_row():
    with pytest.raises(ImportFileError, match="第 2 行是空行，不能作为表头"):
        locate_table([["商品编码", "供货价"], [], ["1", "2"]], header_row=1)


def test_repeated_header_rows_are_skipped():
    rows = [["商品编码", "商品名称", "供货价"], ["1", "a", "1"], ["商品编码", "商品名称", "供货价"], ["2", "b", "2"]]
    skipped = [r for r in locate_table(rows).rows if r.skip]
    assert [(r.line, r.skip) for r in skipped] == [(3, "重复的表头行，已跳过")]


def test_headers_only():
    with pytest.raises(ImportFileError, match="只有表头，没有商品数据"):
        locate_table([["XX价格表"], ["商品编码", "商品名称", "供货价"], [], ["备注：欢迎咨询"]])


def test_empty_sheet(make_xlsx, read_rows):
    with pytest.raises(ImportFileError, match="表格是空的"):
        locate_table(read_rows(make_xlsx([[None, ""], []])))


def test_unknown_headers_fall_back_to_the_first_wide_text_row():
    sample = [["价目表"], ["货品", "规格", "拿货", "备用"], ["x1", "1元", "0.9", "y"]]
    assert find_header_row(sample) == 1


def test_rows_after_the_sample_are_streamed():
    def rows():
        yield ["商品编码", "商品名称", "供货价"]
        for i in range(100):
            yield [str(i), "名", "1"]

    assert sum(1 for _ in locate_table(rows(), scan_rows=5).rows) == 100


@pytest.mark.parametrize("value, text", [(1001.0, "1001"), (9.5, "9.5"), (" 名称 ", "名称"), (None, ""), (True, "True")])
def test_cell_text(value, text):
    assert cell_text(value) == text
