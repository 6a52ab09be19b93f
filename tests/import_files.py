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
