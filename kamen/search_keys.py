"""The text a product is found by: its name and code, plus the name's pinyin.

Customers type what is on their keyboard: "qb" for Q币, "aiqiyi" for 爱奇艺.
The key is worked out once when a product is written (insert default, the
form, imports, sync) and stored lower-cased, so a search is plain LIKEs on
one column instead of converting every name per request.
"""
from pypinyin import Style, lazy_pinyin

MAX_WORDS = 6  # more words than this are ignored: each one is a LIKE over every product


def search_key(name, code=""):
    """``name code initials full-pinyin``, lower-cased.

    Non-Chinese runs (Q, 10) stay as they are in the initials, so "腾讯Q币"
    gives "txqb" and "qb" matches it."""
    name = (name or "").strip()
    initials = "".join(part.strip() for part in lazy_pinyin(name, style=Style.FIRST_LETTER))
    full = "".join(part.strip() for part in lazy_pinyin(name))
    return " ".join(p for p in (name, (code or "").strip(), initials, full) if p).lower()


def search_words(query):
    """The distinct words of a query, lower-cased, at most MAX_WORDS."""
    words = []
    for word in query.lower().split():
        if word not in words:
            words.append(word)
    return words[:MAX_WORDS]
