"""Messy supplier files, written at test time."""
import csv
import io
import zipfile

from openpyxl import Workbook

HEADER = ["商品ID", "名称", "进价", "面值", "库存", "活动价", "活动结束"]
ROWS = [
    ["QB10", "腾讯Q币 10元", "9.60", "10元", "500", "", ""],
    ["QB30", "腾讯Q币 30元", "28.80", "30", "200", "", ""],
    ["YD50", "移动话费 50元", "abc", "50", "100", "", ""],
    ["QB10", "重复的Q币", "9.70", "10", "1", "", ""],
    ["DX100", "电信话费 100元", "97.20", "100", "-5", "", ""],
]


def messy_csv(rows=ROWS, header=HEADER, encoding="gbk"):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["XX货源价格表 2026-11"])
    writer.writerow(["联系QQ：123456"])
    writer.writerow([])
    writer.writerow(header)
    writer.writerows(rows)
    writer.writerow(["合计", "", "", "", "", "", ""])
    return out.getvalue().encode(encoding)


def messy_xlsx(rows=ROWS, header=HEADER):
    book = Workbook()
    sheet = book.active
    sheet.title = "游戏点卡"
    sheet.append(["XX货源价格表 2026-11"])
    sheet.merge_cells("A1:G1")
    sheet.append([])
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    sheet.append(["备注：价格随时调整"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def raw_xlsx(path, sheet_xml):
    """A minimal workbook around hand-written sheet XML, as other tools write it."""
    parts = {
        "[Content_Types].xml": (
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/data.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            "</Types>"
        ),
        "_rels/.rels": (
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
            "</Relationships>"
        ),
        "xl/workbook.xml": (
            '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
            'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
            '<sheets><sheet name="价格" sheetId="1" r:id="rId7"/></sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": (
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId7" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/data.xml"/>'
            "</Relationships>"
        ),
        "xl/worksheets/data.xml": sheet_xml,
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in parts.items():
            zf.writestr(name, text)
    return path


# A supplier's weekly list as a reseller receives it: a title row, a note row, the supplier's own
# headers, ¥ signs and full-width digits, and ten rows that cannot be imported as they are.
WEEKLY_HEADER = ["商品编号", "商品名称", "类目", "进货价", "建议零售价", "库存"]
WEEKLY_KINDS = (  # category, name, face values
    ("游戏点卡/腾讯游戏", "腾讯Q币 {}元", (10, 20, 30, 50, 100)),
    ("话费充值/中国移动", "中国移动话费快充 {}元", (30, 50, 100, 200)),
    ("视频会员/爱奇艺", "爱奇艺黄金会员 直充 {}元", (25, 68, 198)),
    ("游戏点卡/网易游戏", "网易一卡通 {}元", (50, 100, 200)),
)
WEEKLY_BAD = {  # row index -> (column, bad value)
    7: (3, "面议"), 41: (3, ""), 88: (1, ""), 123: (5, "-3"), 170: (3, "¥12.345"),
    222: (4, "问客服"), 260: (3, "abc"), 311: (0, "1.23E+11"), 377: (5, "很多"), 444: (3, "-1"),
}
FULL_WIDTH = str.maketrans("0123456789.", "０１２３４５６７８９．")


def weekly_list_rows(count=500, week=1):
    """(rows, expected) for ``count`` goods; ``expected`` maps each good code to
    (category, cost, 建议零售价)."""
    rows, expected = [], {}
    for i in range(count):
        category, name, faces = WEEKLY_KINDS[i % len(WEEKLY_KINDS)]
        face = faces[(i // len(WEEKLY_KINDS)) % len(faces)]
        code = f"XS{i + 1:05d}"
        cost = round(face * (0.93 + (i % 5) / 100) + (0.01 * (week - 1) if i % 10 == 0 else 0), 2)
        retail = f"{face:.2f}"
        shown_cost = f"¥{cost:.2f}" if i % 3 == 0 else f"{cost:.2f}".translate(FULL_WIDTH) if i % 3 == 1 else cost
        rows.append([code, f"{name.format(face)} #{i + 1}", category, shown_cost, retail, 100 + i % 50])
        expected[code] = (category, f"{cost:.2f}", retail)
    for index, (column, value) in WEEKLY_BAD.items():
        if index < count:
            rows[index][column] = value
            expected.pop(f"XS{index + 1:05d}", None)
    return rows, expected


def weekly_list_xlsx(rows):
    book = Workbook()
    sheet = book.active
    sheet.title = "本周价格"
    sheet.append(["XX数码货源 · 本周价格表"])
    sheet.merge_cells("A1:F1")
    sheet.append(["说明：价格含税，随时调整；有问题联系客服QQ 10001"])
    sheet.append(WEEKLY_HEADER)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
