"""admin session version; alert webhook URL encrypted at rest

Revision ID: 0008_admin_sessions
Revises: 0005_uploads

The robot webhook URL carries the robot's key, so it is stored encrypted like
the other alert secrets (kamen/secretbox.py, keyed by SECRET_KEY: run this
with the production SECRET_KEY set, as every ``flask db upgrade`` is).
"""
from alembic import op
import sqlalchemy as sa


revision = "0008_admin_sessions"
down_revision = "0009_supplier_guards"
branch_labels = None
depends_on = None

settings = sa.table("settings", sa.column("key", sa.String), sa.column("value", sa.JSON))


def _rewrite_webhook_url(convert):
    conn = op.get_bind()
    row = conn.execute(sa.select(settings.c.value).where(settings.c.key == "alerts")).first()
    if row is None or not (row.value or {}).get("webhook_url"):
        return
    value = dict(row.value)
    value["webhook_url"] = convert(value["webhook_url"])
    conn.execute(sa.update(settings).where(settings.c.key == "alerts").values(value=value))


def upgrade():
    with op.batch_alter_table("admin_users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("session_version", sa.Integer(), server_default="0", nullable=False))

    from kamen.secretbox import encrypt

    # Plaintext URLs start with http(s)://; a Fernet token never does.
    _rewrite_webhook_url(lambda url: encrypt(url) if url.startswith(("http://", "https://")) else url)


def downgrade():
    from kamen.secretbox import decrypt

    _rewrite_webhook_url(lambda url: url if url.startswith(("http://", "https://")) else decrypt(url))

    with op.batch_alter_table("admin_users", schema=None) as batch_op:
        batch_op.drop_column("session_version")
