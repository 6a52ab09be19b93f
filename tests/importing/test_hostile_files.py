"""Hostile and broken files: a clear Chinese message, no crash, bounded memory.

Each file is read in a child process (tests/importing/read_probe.py) whose
peak RSS is measured, so a reader that loads or allocates too much fails here.
"""
import codecs
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kamen.services.importing.readers import column_letters
from tests.import_files import raw_xlsx

ROOT = Path(__file__).resolve().parents[2]
PEAK_RSS_MB = 150
NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'


def probe(path):
    proc = subprocess.run([sys.executable, "-m", "tests.importing.read_probe", str(path)],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def sheet(rows_xml):
    return f"<worksheet {NS}><sheetData>{rows_xml}</sheetData></worksheet>"


def far_cell_xlsx(path):
    """The file from the review: one cell at A1, one at XFD150000 (a 150,000 x 16,384 grid)."""
    return raw_xlsx(path, sheet(
        '<row r="1"><c r="A1" t="inlineStr"><is><t>商品编码</t></is></c></row>'
        '<row r="150000"><c r="XFD150000"><v>1</v></c></row>'
    ))


def wide_xlsx(path):
    cells = "".join(f'<c r="{column_letters(i)}1"><v>{i}</v></c>' for i in range(1, 16385))
    return raw_xlsx(path, sheet(f'<row r="1">{cells}</row>'))


def positional_wide_xlsx(path):
    """Cells without references sit one after another: 300 of them make 300 columns."""
    return raw_xlsx(path, sheet("<row>" + "<c><v>1</v></c>" * 300 + "</row><row><c><v>2</v></c></row>"))


def lying_row_xlsx(path):
    """A cell whose reference disagrees with its row's: calamine places it by the cell's."""
    return raw_xlsx(path, sheet('<row r="1"><c r="A1"><v>1</v></c><c r="CV100000"><v>2</v></c></row>'))


def lying_narrow_xlsx(path):
    """The same inside A..Z: row 1 claims a cell of row 250,000."""
    return raw_xlsx(path, sheet('<row r="1"><c r="A1"><v>1</v></c><c r="B250000"><v>2</v></c></row>'))


def truncated_xlsx(path):
    full = raw_xlsx(path, sheet("".join(f'<row r="{i}"><c r="A{i}"><v>{i}</v></c></row>' for i in range(1, 2000))))
    data = full.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def png_named_xlsx(path):
    path.write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(256)) * 100)
    return path


def csv_with_long_line(path):
    path.write_bytes("商品编码,商品名称\n1001,".encode() + b"x" * (10 * 1024 * 1024) + b"\n1002,y\n")
    return path


def csv_with_many_fields(path):
    path.write_bytes("商品编码,商品名称\n".encode() + b"," * 500_000 + b"\n")
    return path


def csv_with_nul_late(path):
    path.write_bytes("商品编码,商品名称\n".encode() + b"1001,ok\n" * 20_000 + b"1002,b\0d\n")
    return path


def csv_with_nul_early(path):
    path.write_bytes("商品编码,商品名称\n1001,a\0b\n".encode())
    return path


def csv_with_mixed_encodings(path):
    good = "1001,腾讯Q币\n".encode("utf-8") * 8_000
    path.write_bytes(codecs.BOM_UTF8 + "商品编码,商品名称\n".encode() + good + "1002,网易一卡通\n".encode("gbk"))
    return path


def shared_strings_bomb(path):
    raw_xlsx(path, sheet('<row r="1"><c r="A1" t="s"><v>0</v></c></row>'))
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("xl/sharedStrings.xml", f'<sst {NS}><si><t>{"a" * (80 * 1024 * 1024)}</t></si></sst>')
    return path


@pytest.mark.parametrize(
    "build, name, message",
    [
        (far_cell_xlsx, "far.xlsx", "表格有 16384 列（最远的单元格在 XFD 列），超过上限 256 列"),
        (wide_xlsx, "wide.xlsx", "表格有 16384 列"),
        (positional_wide_xlsx, "positional.xlsx", "表格有 300 列"),
        (lying_row_xlsx, "lying.xlsx", r"表格范围过大（100000 行 × 100 列），超过上限 6000000 个单元格"),
        (lying_narrow_xlsx, "lying-narrow.xlsx", "表格有 250000 行，超过单次导入上限 200000 行"),
        (truncated_xlsx, "truncated.xlsx", "文件已损坏或不是有效的 Excel 文件"),
        (png_named_xlsx, "photo.xlsx", "无法识别的文件类型"),
        (csv_with_long_line, "long.csv", "第 2 行超过 1 MB"),
        (csv_with_many_fields, "fields.csv", "第 2 行有 500001 列，超过上限 256 列"),
        (csv_with_nul_late, "nul.csv", "第 20002 行含有空字符（NUL）"),
        (csv_with_nul_early, "nul-head.csv", "无法识别的文件类型"),
        (csv_with_mixed_encodings, "mixed.csv", "第 8002 行有无法识别的文字"),
        (shared_strings_bomb, "strings.xlsx", "文字部分解压后有 80 MB，超过上限 64 MB"),
    ],
)
def test_hostile_file_is_refused_with_bounded_memory(tmp_path, build, name, message):
    result = probe(build(tmp_path / name))
    assert result["rc"] == 0, result
    assert result["message"] is not None and message in result["message"], result
    assert result["max_rss_mb"] < PEAK_RSS_MB, result


def test_far_cell_file_is_tiny_and_refused_fast(tmp_path):
    path = far_cell_xlsx(tmp_path / "far.xlsx")
    assert path.stat().st_size < 2048
    assert probe(path)["seconds"] < 2


def test_a_real_price_list_reads_within_the_same_bound(tmp_path, make_xlsx):
    rows = [["商品编码", "商品名称", "供货价"]] + [[f"C{i}", f"商品 {i}", 9.5] for i in range(20_000)]
    result = probe(make_xlsx(rows))
    assert result["message"] is None and result["rows"] == 20_001, result
    assert result["max_rss_mb"] < PEAK_RSS_MB, result


def far_cell_xls(path):
    """The same trick in the old format: a 5 KB .xls whose two cells span 65,536 x 256."""
    import xlwt

    book = xlwt.Workbook()
    sheet = book.add_sheet("价格")
    sheet.write(0, 0, "商品编码")
    sheet.write(65535, 255, 1)
    book.save(str(path))
    return path


def test_far_cell_xls_is_refused_before_calamine_builds_its_grids(tmp_path):
    result = probe(far_cell_xls(tmp_path / "far.xls"))
    assert result["rc"] == 0, result
    assert "表格范围过大（65536 行 × 256 列）" in result["message"], result
    assert result["max_rss_mb"] < PEAK_RSS_MB, result


def test_a_real_xls_still_reads(tmp_path, read_rows):
    import xlwt

    book = xlwt.Workbook()
    sheet = book.add_sheet("价格")
    for r, row in enumerate([["商品编码", "供货价"], ["1001", 9.5], ["1002", 12]]):
        for c, value in enumerate(row):
            sheet.write(r, c, value)
    book.save(str(tmp_path / "old.xls"))
    assert read_rows(tmp_path / "old.xls") == [["商品编码", "供货价"], ["1001", 9.5], ["1002", 12.0]]
