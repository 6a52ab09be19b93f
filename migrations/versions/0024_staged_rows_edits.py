"""staged import rows keep the admin's edits, not a copy of every mapped cell

import_rows.raw held the text of each mapped cell, a copy of what `cells`
already holds: a third of a staged row's bytes, built, encoded and written
for each of a file's 100,000 rows. It becomes `edits`: only the texts a row
holds where they are not its cell's (an inline fix, a remembered fix, a
change in bulk, an xlsx date as typed); staging.row_texts gives the whole.
Rows staged before keep their full copy, which reads the same as edits.

Revision ID: 0024_staged_rows_edits
Revises: 0023_upload_chunks_uncompressed
"""
import sqlalchemy as sa
from alembic import op


revision = "0024_staged_rows_edits"
down_revision = "0023_upload_chunks_uncompressed"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("import_rows", schema=None) as batch_op:
        batch_op.alter_column("raw", new_column_name="edits")


def downgrade():
    """raw is the text of every mapped cell again: the cells' texts with the edits over them."""
    bind = op.get_bind()
    rows = sa.table("import_rows", sa.column("id", sa.Integer), sa.column("batch_id", sa.Integer),
                    sa.column("cells", sa.JSON), sa.column("edits", sa.JSON))
    batches = sa.table("import_batches", sa.column("id", sa.Integer), sa.column("mapping", sa.JSON))
    mappings = dict(bind.execute(sa.select(batches.c.id, batches.c.mapping)).all())
    last = 0
    while True:
        chunk = bind.execute(sa.select(rows.c.id, rows.c.batch_id, rows.c.cells, rows.c.edits)
                             .where(rows.c.id > last).order_by(rows.c.id).limit(5000)).all()
        if not chunk:
            break
        bind.execute(rows.update().where(rows.c.id == sa.bindparam("row_id")).values(edits=sa.bindparam("texts")),
                     [{"row_id": row_id, "texts": _texts(mappings.get(batch_id) or {}, cells or [], edits)}
                      for row_id, batch_id, cells, edits in chunk])
        last = chunk[-1][0]
    with op.batch_alter_table("import_rows", schema=None) as batch_op:
        batch_op.alter_column("edits", new_column_name="raw")


def _texts(mapping, cells, edits):
    texts = {key: _text(cells[int(col)]) if int(col) < len(cells) else "" for key, col in mapping.items()}
    texts.update(edits or {})
    return texts


def _text(cell):
    """A staged cell (a JSON scalar) as the preview's text of it."""
    if cell is None:
        return ""
    if isinstance(cell, bool):
        return "是" if cell else "否"
    if isinstance(cell, float):
        return str(int(cell)) if cell.is_integer() else repr(cell)
    return str(cell).strip()
