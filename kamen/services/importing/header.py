"""Find the header row of a messy supplier price list and the product rows under it.

Supplier files start with a merged title ("XX货源价格表 2026-11"), contact and
notes rows, blank rows; they end with notes and totals. The header is the row
naming the most known fields; a group row above it ("价格" over 供货价 | 售价)
is merged in. Rows that are not products are yielded with a reason, so the
preview counts them as skipped instead of importing them.
"""
import re
from dataclasses import dataclass
from itertools import chain, islice
from typing import NamedTuple

from kamen.services.importing.errors import ImportFileError
from kamen.services.importing.mapping import VOCABULARY, normalize_header
from kamen.services.importing.normalize import is_blank

SCAN_ROWS = 30
FOOTER_WORDS = ("合计", "总计", "小计", "备注", "说明", "注:", "注：", "*注", "注意", "温馨提示", "联系", "以上")
_NUMERIC = re.compile(r"[¥￥]?[+-]?[\d,]+(\.\d+)?元?")


class SourceRow(NamedTuple):
    """A tuple: 100,000 of them are made, and pickled to the staging helpers, per file."""

    line: int  # row number as the admin sees it in Excel, 1-based
    cells: list
    skip: str | None  # why this is not a product row, or None


@dataclass
class Table:
    header_index: int  # 0-based; data starts on the next row
    headers: list
    rows: object  # iterator of SourceRow, blank rows left out


def locate_table(rows, header_row=None, scan_rows=SCAN_ROWS):
    """Split streamed rows into header and product rows; header_row (0-based) overrides detection."""
    rows = iter(rows)
    sample = list(islice(rows, max(scan_rows, (header_row or 0) + 2)))
    if not any(map(_filled_count, sample)):
        raise ImportFileError("表格是空的，没有任何内容")
    if header_row is None:
        index, headers = detect_header(sample)
    elif header_row < len(sample) and _filled_count(sample[header_row]):
        index, headers = header_row, header_labels(sample, header_row)
    else:
        raise ImportFileError(f"第 {header_row + 1} 行是空行，不能作为表头")
    data = _source_rows(chain(sample[index + 1 :], rows), index + 2, headers)
    pending = []
    for row in data:
        pending.append(row)
        if row.skip is None:
            break
    else:
        raise ImportFileError("只有表头，没有商品数据")
    return Table(index, headers, chain(pending, data))


def detect_header(sample):
    """(index, labels) of the header in the first rows; a two-row header ends on its lower row."""
    index = find_header_row(sample)
    if index + 1 < len(sample) and _header_like(sample[index + 1]):
        index += 1
    return index, header_labels(sample, index)


def header_labels(sample, index):
    """Labels of one row, merged with a group row above it (价格 over 供货价 | 售价)."""
    labels = [cell_text(c) for c in sample[index]]
    if index > 0 and _header_like(sample[index - 1]):
        return _merge([cell_text(c) for c in sample[index - 1]], labels)
    return labels


def find_header_row(sample):
    """0-based index of the row naming the most known fields (the first on a tie).

    With fewer than two known names, fall back to the first wide row of text only.
    """
    hits = [_known_count(row) for row in sample]
    best = max(range(len(sample)), key=lambda i: (hits[i], -i))
    if hits[best] >= 2:
        return best
    widest = max(map(_filled_count, sample))
    for i, row in enumerate(sample):
        filled = _filled_count(row)
        if filled >= 2 and filled >= 0.6 * widest and not any(_is_number(c) for c in row):
            return i
    return 0


def cell_text(value):
    """A cell as the admin reads it: 1001.0 -> '1001', None -> ''."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


def _source_rows(rows, first_line, headers):
    labelled = sum(1 for h in headers if h)
    header_words = {normalize_header(h) for h in headers if h}
    # An ASCII cell normalizes to ASCII: with headers all in Chinese, a row starting with a
    # code like "SP1001" is no header, known without normalizing it (this runs for every row).
    ascii_words = any(word.isascii() for word in header_words)
    for line, cells in enumerate(rows, first_line):
        # is_blank inlined: this runs for every cell of the file.
        filled = [c for c in cells if (c.strip() if c.__class__ is str else c is not None)]
        if not filled:
            continue
        yield SourceRow(line, cells, _skip_reason(filled, labelled, header_words, ascii_words))


def _skip_reason(filled, labelled, header_words, ascii_words):
    first = cell_text(filled[0])
    if first.startswith(FOOTER_WORDS):
        return "说明或合计行，不是商品，已跳过"
    if len(filled) == 1 and labelled >= 3:
        return "只有一个单元格的说明行，不是商品，已跳过"
    if (ascii_words or not first.isascii()) and normalize_header(first) in header_words and all(
        normalize_header(cell_text(c)) in header_words for c in filled
    ):
        return "重复的表头行，已跳过"
    return None


def _merge(upper, lower):
    """Lower label where present (供货价 under a merged 价格), else the upper one."""
    width = max(len(upper), len(lower))
    upper, lower = upper + [""] * (width - len(upper)), lower + [""] * (width - len(lower))
    return [b or a for a, b in zip(upper, lower)]


def _header_like(row):
    return _known_count(row) >= 1 and not any(_is_number(c) for c in row)


def _known_count(row):
    return sum(1 for c in row if isinstance(c, str) and c and normalize_header(c) in VOCABULARY)


def _filled_count(row):
    return sum(1 for c in row if not is_blank(c))


def _is_number(value):
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    return isinstance(value, str) and _NUMERIC.fullmatch(value.strip()) is not None
