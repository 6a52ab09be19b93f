"""The standard import template an admin downloads, as xlsx and as CSV.

The xlsx carries Excel data validation so most mistakes are caught while
typing (分类 is a dropdown of the shop's categories), and formats the whole
code column as text so Excel cannot turn long codes into 1.23E+11. Its
example rows use the demo shop's categories, so it imports as downloaded.
"""
import csv
import io
from datetime import datetime


from kamen.services.importing.mapping import FIELDS

HEADERS = [f.label for f in FIELDS]
LAST_ROW = 1048576  # validation covers every row Excel has
DELIVERY_CHOICES = "自动发卡密,充值到账号,人工发货"

# key: (format, what it means)
NOTES = {
    "code": ("文本，最多 64 个字符", "货源的商品编码；同一货源下唯一，再次导入时按它更新"),
    "name": ("文本，最多 200 个字", "显示在商城的商品名称"),
    "category": ("文本，如 游戏/腾讯", "一级/二级分类；留空则导入到导入时选择的分类"),
    "face_value": ("数字，如 10 或 10元", "商品面值"),
    "tier_label": ("如 1-10元", "可充值的面值范围（任意面值直充商品用）"),
    "cost_price": ("数字 ≥ 0，最多两位小数", "货源给你的价格（成本）"),
    "market_price": ("数字 ≥ 0，最多两位小数", "官方价或原价，用于显示划线价"),
    "sale_price": ("数字 ≥ 0，最多两位小数", "商城售价，不能低于供货价加货源的最低利润；留空则按导入时设置的加价规则计算"),
    "stock": ("整数 ≥ 0", "库存数量；本地卡密商品的库存等于未售卡密数量，此列不用于它们"),
    "promo_price": ("数字 ≥ 0，最多两位小数", "活动期间的价格，不能高于售价"),
    "promo_start": ("日期，如 2026-12-01 或 2026-12-01 08:00", "活动开始时间"),
    "promo_end": ("日期，如 2026-12-31", "活动结束时间；只写日期表示到当天结束"),
    "sync_stock": ("是 / 否", "是否跟随货源同步库存"),
    "delivery_type": ("自动发卡密 / 充值到账号 / 人工发货", "买家付款后如何发货"),
    "account_format": ("文本，如 QQ号、手机号", "充值类商品需要买家填写的账号"),
    "delivery_minutes": ("整数（分钟）", "预计多少分钟到账"),
}

EXAMPLES = [
    {
        "code": "1001", "name": "腾讯QQ会员 1个月", "category": "游戏点卡/腾讯游戏", "face_value": 10,
        "cost_price": 9.5, "market_price": 10, "sale_price": 9.9, "stock": 100, "promo_price": 9.8,
        "promo_start": datetime(2026, 12, 1), "promo_end": datetime(2026, 12, 31),
        "sync_stock": "是", "delivery_type": "自动发卡密", "delivery_minutes": 1,
    },
    {
        "code": "0086-DX-ANY", "name": "电信话费任意充", "category": "话费充值/中国电信", "tier_label": "1-500元",
        "cost_price": 0.98, "sync_stock": "否", "delivery_type": "充值到账号",
        "account_format": "手机号", "delivery_minutes": 30,
    },
]


def template_xlsx(categories=()):
    """The template workbook as bytes: 商品 sheet with validation, 说明 sheet, and the
    shop's ``categories`` ("父/子" names) on a hidden 分类 sheet the 分类 dropdown lists."""
    from openpyxl import Workbook  # here: only a download of the template needs openpyxl

    book = Workbook()
    sheet = book.active
    sheet.title = "商品"
    sheet.append(HEADERS)
    from openpyxl.styles import Font

    for f, cell in zip(FIELDS, sheet[1]):
        cell.font = Font(bold=True, color="C00000" if f.required else None)
    for example in EXAMPLES:
        sheet.append([example.get(f.key) for f in FIELDS])
    sheet.freeze_panes = "A2"
    for index, f in enumerate(FIELDS):
        letter = sheet.cell(1, index + 1).column_letter
        sheet.column_dimensions[letter].width = max(12, len(f.label) * 2 + 4)
        number_format = {"code": "@", "promo_start": "yyyy-mm-dd hh:mm", "promo_end": "yyyy-mm-dd hh:mm"}.get(f.key)
        if number_format:
            sheet.column_dimensions[letter].number_format = number_format
            for row in sheet.iter_rows(min_row=2, min_col=index + 1, max_col=index + 1):
                row[0].number_format = number_format
        validation = _category_list(book, categories) if f.key == "category" else _validation(f.key)
        if validation:
            validation.add(f"{letter}2:{letter}{LAST_ROW}")
            sheet.add_data_validation(validation)
    _notes_sheet(book.create_sheet("说明"))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def template_csv():
    """The template as UTF-8 CSV with a BOM, which Excel opens without garbling."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADERS)
    for example in EXAMPLES:
        writer.writerow([_csv_value(example.get(f.key)) for f in FIELDS])
    return out.getvalue().encode("utf-8-sig")


def _validation(key):
    if key in ("face_value", "cost_price", "market_price", "sale_price", "promo_price"):
        return _rule("decimal", "请填写不小于 0 的数字，最多两位小数", operator="greaterThanOrEqual", formula1="0")
    if key in ("stock", "delivery_minutes"):
        return _rule("whole", "请填写不小于 0 的整数", operator="greaterThanOrEqual", formula1="0")
    if key == "sync_stock":
        return _rule("list", "请选择 是 或 否", formula1='"是,否"')
    if key == "delivery_type":
        return _rule("list", f"请选择：{DELIVERY_CHOICES.replace(',', '、')}", formula1=f'"{DELIVERY_CHOICES}"')
    if key in ("promo_start", "promo_end"):
        # 36526 is 2000-01-01 as an Excel date serial.
        return _rule("date", "请填写日期，如 2026-12-31", operator="greaterThan", formula1="36526")
    return None


def _rule(kind, message, **options):
    from openpyxl.worksheet.datavalidation import DataValidation

    return DataValidation(
        type=kind, allow_blank=True, showErrorMessage=True, errorTitle="格式不对", error=message, **options
    )


def _category_list(book, categories):
    """A dropdown of the shop's categories; another name only warns (the import can create it)."""
    from openpyxl.worksheet.datavalidation import DataValidation

    if not categories:
        return None
    sheet = book.create_sheet("分类")
    sheet.sheet_state = "hidden"
    for name in categories:
        sheet.append([name])
    return DataValidation(
        type="list", formula1=f"'分类'!$A$1:$A${len(categories)}", allow_blank=True, showErrorMessage=True,
        errorStyle="warning", errorTitle="分类不在列表中", error="商城里还没有这个分类。请从下拉列表中选择，或确认要使用新的分类名称。",
    )


def _notes_sheet(sheet):
    from openpyxl.styles import Font

    sheet.append(["导入说明"])
    sheet["A1"].font = Font(bold=True, size=14)
    for line in (
        "1. 在“商品”表第 2 行起填写，每行一个商品；不要修改表头文字，不需要的列可以删除。",
        "2. 红色表头为必填：商品编码、商品名称、供货价。",
        "3. “分类”可从下拉列表选择商城已有的分类（格式：一级分类/二级分类）。",
        "4. 售价留空时，按导入时设置的加价规则由供货价计算，且不会低于供货价加货源的最低利润。",
        "5. 商品编码请保持“文本”格式，避免 Excel 把长数字显示成 1.23E+11 而丢失数字。",
        "6. 示例两行可以删除；导入前可以预览，有错误的行会标出原因。",
    ):
        sheet.append([line])
    sheet.append([])
    sheet.append(["列名", "是否必填", "格式", "说明"])
    for cell in sheet[sheet.max_row]:
        cell.font = Font(bold=True)
    for f in FIELDS:
        fmt, meaning = NOTES[f.key]
        sheet.append([f.label, "必填" if f.required else "选填", fmt, meaning])
    for letter, width in zip("ABCD", (18, 10, 36, 60)):
        sheet.column_dimensions[letter].width = width


def _csv_value(value):
    if value is None:
        return ""
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d}"
    return str(value)
