"""The PostgreSQL fast path for staging and committing 100,000-row files.

Staged rows go in with COPY, and a commit chunk is a few set-based
statements (UPDATE … FROM with the before-images taken in the same
statement, INSERT … SELECT … RETURNING), so the work per row stays in the
database instead of in Python. SQLite keeps the portable Core statements in
staging.py and committing.py; both paths leave the same rows behind.
"""
import operator
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import NamedTuple

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from kamen.models import ImportRow, Product
from kamen.models.types import ExactDecimal
from kamen.search_keys import search_key
from kamen.services.importing.errors import BadCell

STAGED_COLUMNS = tuple(c.name for c in ImportRow.__table__.columns if c.name != "id")
_JSON_COLUMNS = tuple(name for name in STAGED_COLUMNS if isinstance(ImportRow.__table__.c[name].type, sa.JSON)
                      and name != "cells")
_PLAIN_COLUMNS = tuple(name for name in STAGED_COLUMNS if name not in _JSON_COLUMNS and name != "cells")
_EMPTY_JSON = {list: "[]", dict: "{}", type(None): "null"}


def _json_default(value):
    """Values staging leaves as Python values, as its to_json writes them."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _cell_default(value):
    """Cells as read, as its json_cell writes them."""
    if isinstance(value, BadCell):
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# orjson: several JSON columns for each of 100,000 rows, at a seventh of the json module's
# cost. Dates go through the defaults above, so the text is what json.dumps would write.
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME


def _dumps(value):
    return orjson.dumps(value, default=_json_default, option=_OPTIONS).decode()


def _dump_cells(value):
    return orjson.dumps(value, default=_cell_default, option=_OPTIONS).decode()


def is_postgresql(session):
    return session.get_bind().dialect.name == "postgresql"


def _q(name):
    return f'"{name}"'


def _json_text(value):
    return _dumps(value) if value else _EMPTY_JSON[type(value)]


def copy_staged_rows(session, rows):
    """COPY staged-row dicts (as staging builds them) into import_rows, in the session's transaction.

    One pass per row: the plain columns by one itemgetter, each JSON column
    encoded by the C encoder (Decimal, dates and bad cells through its default)."""
    plain, as_json = operator.itemgetter(*_PLAIN_COLUMNS), operator.itemgetter(*_JSON_COLUMNS)
    cursor = session.connection().connection.driver_connection.cursor()
    columns = ", ".join(_q(name) for name in (*_PLAIN_COLUMNS, "cells", *_JSON_COLUMNS))
    with cursor.copy(f"COPY import_rows ({columns}) FROM STDIN") as copy:
        write = copy.write_row
        for row in rows:
            write((*plain(row), _dump_cells(row["cells"]), *map(_json_text, as_json(row))))


IN_LIMIT = 10_000  # values in one IN list: PostgreSQL takes at most 65,535 parameters per statement


def one_of(session, column, values, *, ranged=False):
    """Conditions that ``column`` is one of ``values``, one per statement to run: a single
    array parameter on PostgreSQL (a 10,000-parameter IN costs half a second to send),
    bounded IN lists elsewhere. No values, no conditions.

    ``ranged`` (PostgreSQL): keys that mostly sit together in an index (a chunk of a
    price list's codes: most lists run in code order) are read by an index range
    instead of a scan of the table (5,000 of 100,000 goods in 8 ms instead of 40).
    Most of the keys are asked for between their least and greatest, which the database
    works out in its own collation; the few at either end of them (a code repeated from
    far up the list, say) are asked for on their own, by the index too."""
    values = list(values)
    if not values:
        return []
    if not is_postgresql(session):
        return [column.in_(values[i:i + IN_LIMIT]) for i in range(0, len(values), IN_LIMIT)]
    if not ranged or len(values) < RANGED_FROM:
        return [_any(column, values)]
    ordered = sorted(value for value in values if value is not None)
    trim = len(ordered) // 50
    edges = ordered[:trim] + ordered[len(ordered) - trim:]
    core = _any(column, ordered[trim:len(ordered) - trim])
    each = sa.func.unnest(core.right.element).column_valued("value")
    core = sa.and_(core, column.between(sa.select(sa.func.min(each)).scalar_subquery(),
                                        sa.select(sa.func.max(each)).scalar_subquery()))
    return [core, _any(column, edges)] if edges else [core]


RANGED_FROM = 200  # fewer keys than this are looked up one by one in the index anyway


def _any(column, values):
    return column == sa.any_(sa.bindparam(None, values, type_=postgresql.ARRAY(column.type)))


def plain_rows(session, statement):
    """``statement``'s rows as tuples of what the driver returns (Decimal for NUMERIC, the
    text of an enum). On PostgreSQL they are fetched from psycopg's cursor, without
    SQLAlchemy's Row and result handling: a re-import reads 100,000 goods. Elsewhere
    through Core (enums come back as str enums: they compare equal)."""
    result = session.connection().execute(statement)
    if not is_postgresql(session):
        return result.all()
    try:
        return result.cursor.fetchall()
    finally:
        result.close()


# The staged rows' columns queries select by, join on or group by: the wide JSON columns
# (cells, values, …) are never filtered on, and sampling them is most of an ANALYZE's cost.
_PLANNED = {"import_rows": ("id", "batch_id", "action", "line", "code", "committed", "product_id", "category_path",
                            "has_warnings", "error_kinds"),
            # The goods' columns a commit's tail selects by; autovacuum's own ANALYZE, which
            # 100,000 new goods set off, brings the rest up to date for the shop.
            "products": ("id", "supplier_id", "code", "category_id", "is_listed", "stock_mode", "stock",
                         "low_stock_alerted")}
# Rows sampled per table: 300 × the statistics target. The staged rows' planned columns hold
# a few batches, actions and kinds, and ranges of ids and lines: a target of 20 (6,000 rows)
# describes them, in a seventh of the default's time on the preview's critical path. The
# goods keep the default: the shop's queries are planned on their statistics.
_STATISTICS_TARGET = {"import_rows": 20}


def refresh_statistics(session, table="import_rows"):
    """After COPYing a big batch (or committing it): without fresh statistics the planner
    expects one staged row (or the goods of before) and joins 5,000 rows by nested loops."""
    target = _STATISTICS_TARGET.get(table)
    if target:
        session.execute(sa.text(f"SET LOCAL default_statistics_target = {target}"))
    session.execute(sa.text(f"ANALYZE {table} ({', '.join(_PLANNED[table])})"))
    if target:
        session.execute(sa.text("SET LOCAL default_statistics_target TO DEFAULT"))


# -- commit -----------------------------------------------------------------

_CHUNKS = """
    SELECT count(*), min(id), max(id) FROM (
        SELECT id, (row_number() OVER (ORDER BY id) - 1) / :limit AS n FROM import_rows
        WHERE batch_id = :batch AND action IN ('create', 'update') AND NOT committed
    ) todo GROUP BY n ORDER BY n
"""
_IN_CHUNK = "r.id BETWEEN :first AND :last AND r.batch_id = :batch AND NOT r.committed"
# The names a chunk writes, whose shop search keys (pinyin, worked out here in Python)
# go in with the same statements: no second pass over 100,000 written products.
_NAMES = f"""
    SELECT r.id, r.code, r."values"->>'name' FROM import_rows r
    WHERE {_IN_CHUNK} AND r.action IN ('create', 'update')
"""  # rows without a name are left out in Python: ->> reads the whole JSON text each time
_KEYS = "unnest(CAST(:key_ids AS integer[]), CAST(:keys AS text[])) AS k(id, key)"


def _before_image(fields):
    """The product's values today, as staging's to_json writes them, for the keys the row sets."""
    money = {c.name for c in Product.__table__.columns if isinstance(c.type, ExactDecimal)}
    pairs = ", ".join(f"'{f}', " + (f"CAST(p.{_q(f)} AS text)" if f in money else f"p.{_q(f)}") for f in fields)
    return (f"(SELECT COALESCE(jsonb_object_agg(e.key, e.value), '{{}}') "
            f"FROM jsonb_each(jsonb_build_object({pairs})) e WHERE s.v ? e.key)")


def _update_sql(fields):
    assignments = ", ".join(f"{_q(f)} = CASE WHEN s.v ? '{f}' THEN (s.n).{_q(f)} ELSE p.{_q(f)} END" for f in fields)
    return f"""
        WITH src AS (
            SELECT r.id, r.product_id, CAST(r."values" AS jsonb) AS v, k.key
            FROM import_rows r LEFT JOIN {_KEYS} ON k.id = r.id
            WHERE {_IN_CHUNK} AND r.action = 'update'
        ), old AS (
            SELECT s.id, s.product_id, s.v, s.key, jsonb_populate_record(CAST(NULL AS products), s.v) AS n,
                   {_before_image(fields)} AS before
            FROM src s JOIN products p ON p.id = s.product_id
        ), written AS (
            UPDATE products p SET {assignments}, search_key = COALESCE(s.key, p.search_key), updated_at = :now
            FROM old s WHERE p.id = s.product_id
        )
        UPDATE import_rows r SET before = CAST(old.before AS json), committed = true
        FROM old WHERE r.id = old.id
    """


def _skip_deleted_sql():
    return f"""
        UPDATE import_rows r SET action = 'skip', skip_reason = :reason, committed = true
        WHERE {_IN_CHUNK} AND r.action = 'update'
          AND NOT EXISTS (SELECT 1 FROM products p WHERE p.id = r.product_id)
    """


def _create_sql(columns):
    # The row's values as a record straight from its JSON text (no jsonb merge per row);
    # a column the row leaves out takes the new-product default, worked out once.
    # A new product at or below the 库存预警 threshold is marked as it is written (the
    # import's notice lists it): no second pass rewriting a quarter of the goods.
    value = {c: f"COALESCE(n.{_q(c)}, d.{_q(c)})" for c in columns}
    value["low_stock_alerted"] = (f"({value['is_listed']} AND {value['stock_mode']} <> 'unlimited' "
                                  f"AND {value['stock']} <= :threshold)")
    return f"""
        WITH d AS (
            SELECT * FROM jsonb_populate_record(CAST(NULL AS products), CAST(:defaults AS jsonb))
        ), created AS (
            INSERT INTO products (supplier_id, code, created_at, updated_at, search_key, {", ".join(map(_q, columns))})
            SELECT :supplier, r.code, :now, :now, COALESCE(k.key, lower(r.code)),
                   {", ".join(value[c] for c in columns)}
            FROM d, import_rows r LEFT JOIN {_KEYS} ON k.id = r.id,
                 json_populate_record(CAST(NULL AS products), r."values") n
            WHERE {_IN_CHUNK} AND r.action = 'create'
            ORDER BY r.id
            RETURNING id, code, low_stock_alerted
        )
        UPDATE import_rows r SET product_id = c.id, committed = true
        FROM created c WHERE {_IN_CHUNK} AND r.action = 'create' AND r.code = c.code
        RETURNING c.id, c.low_stock_alerted
    """


class Written(NamedTuple):
    """What a chunk wrote that the commit's tail needs."""
    deleted: int  # update rows skipped: their product was deleted since staging
    low: list  # the ids of the goods it created marked low on stock


class ChunkWriter:
    """Commits a batch's create/update rows chunk by chunk in set-based statements,
    with the shop search keys of the names they write."""

    def __init__(self, fields, new_product_defaults, deleted_reason):
        self.defaults = _dumps(new_product_defaults)
        self.reason = deleted_reason
        self.skip_deleted = sa.text(_skip_deleted_sql())
        self.update = sa.text(_update_sql(fields))
        self.create = sa.text(_create_sql(list(new_product_defaults)))

    @staticmethod
    def chunks(session, batch_id, limit):
        """The rows still to write, as (rows, first id, last id) of ``limit`` rows each:
        disjoint, so separate transactions (and connections) can write them side by side."""
        return session.execute(sa.text(_CHUNKS), {"batch": batch_id, "limit": limit}).all()

    def write(self, session, batch_id, supplier_id, chunk, now, threshold):
        """Write one of ``chunks``' chunks (new goods at or below ``threshold`` marked
        low on stock); the caller commits. Returns a Written."""
        _, first, last = chunk
        params = {"batch": batch_id, "first": first, "last": last, "now": now, "supplier": supplier_id,
                  "defaults": self.defaults, "reason": self.reason, "threshold": threshold}
        names = [row for row in session.execute(sa.text(_NAMES), params) if row[2] is not None]
        params.update(key_ids=[row_id for row_id, _, _ in names],
                      keys=[search_key(name, code) for _, code, name in names])
        deleted = session.execute(self.skip_deleted, params).rowcount
        session.execute(self.update, params)
        return Written(deleted, [pid for pid, alerted in session.execute(self.create, params) if alerted])
