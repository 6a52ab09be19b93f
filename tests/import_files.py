"""Messy supplier files, written at test time."""
import csv
import io

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
