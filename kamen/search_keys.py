"""The text a product is found by: its name and code, plus the name's pinyin.

Customers type what is on their keyboard: "qb" for Q币, "aiqiyi" for 爱奇艺.
The key is worked out once when a product is written (insert default, the
form, imports, sync) and stored lower-cased, so a search is plain LIKEs on
one column instead of converting every name per request.
"""
import re
from functools import lru_cache

from pypinyin import lazy_pinyin

MAX_WORDS = 6  # more words than this are ignored: each one is a LIKE over every product
# Split on runs of Chinese characters, kept: other text, a run, other text, … (other text may be "").
_HAN = re.compile(r"([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+)")


@lru_cache(maxsize=100_000)
def _syllables(run):
    """A run of Chinese characters as pinyin syllables. Catalogues repeat the same
    runs (腾讯, 元, 月卡) across thousands of names: converting each once keeps a
    100,000-row import from spending a minute in pypinyin."""
    return tuple(lazy_pinyin(run))


def search_key(name, code=""):
    """``name code initials full-pinyin``, lower-cased.

    Non-Chinese runs (Q, 10) stay as they are in the initials, so "腾讯Q币"
    gives "txqb" and "qb" matches it."""
    name = (name or "").strip()
    initials, full = [], []
    for index, part in enumerate(_HAN.split(name)):
        if index % 2:  # a run of Chinese characters
            syllables = _syllables(part)
            initials += [s[:1] for s in syllables]
            full += syllables
        else:
            part = part.strip()
            initials.append(part)
            full.append(part)
    return " ".join(p for p in (name, (code or "").strip(), "".join(initials), "".join(full)) if p).lower()


def search_words(query):
    """The distinct words of a query, lower-cased, at most MAX_WORDS."""
    words = []
    for word in query.lower().split():
        if word not in words:
            words.append(word)
    return words[:MAX_WORDS]
