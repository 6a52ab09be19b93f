"""The migrations build exactly the models' schema, on both databases."""
import json

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from kamen import create_app
from kamen.extensions import db
from tests.conftest import BACKENDS, throwaway_pg_database


@pytest.fixture(params=BACKENDS)
def empty_db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrated.db'}"
        return
    with throwaway_pg_database("kamen_mig") as url:
        yield url


def _diff(app):
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "render_as_batch": True})
        return compare_metadata(ctx, db.metadata)


def test_migrations_match_models_and_downgrade_cleanly(empty_db_url, tmp_path):
    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_db_url, "SECRET_KEY": "x", "INSTANCE_PATH": str(tmp_path)})
    with app.app_context():
        upgrade()
        assert _diff(app) == []
        downgrade(revision="base")
        remaining = set(sa.inspect(db.engine).get_table_names()) - {"alembic_version"}
        assert remaining == set()
        upgrade()
        assert _diff(app) == []
        db.engine.dispose()


def test_a_plaintext_webhook_url_is_encrypted_by_the_migration(empty_db_url, tmp_path):
    from kamen.secretbox import decrypt

    url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=ROBOT-KEY-1"
    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_db_url, "SECRET_KEY": "x", "INSTANCE_PATH": str(tmp_path)})
    settings = sa.table("settings", sa.column("key", sa.String), sa.column("value", sa.JSON))

    def stored():
        with db.engine.connect() as conn:
            return conn.execute(sa.select(settings.c.value).where(settings.c.key == "alerts")).scalar_one()

    with app.app_context():
        upgrade(revision="0004")
        with db.engine.begin() as conn:
            conn.execute(settings.insert().values(key="alerts", value={"webhook_kind": "wecom", "webhook_url": url}))
        upgrade()
        value = stored()
        assert "ROBOT-KEY-1" not in value["webhook_url"] and decrypt(value["webhook_url"]) == url
        assert value["webhook_kind"] == "wecom"
        downgrade(revision="0004")
        assert stored()["webhook_url"] == url
        db.engine.dispose()


def test_postgresql_storage_settings_of_the_import_tables(tmp_path):
    """Settings of PostgreSQL's own that the models cannot say: import_rows keeps half of
    each page free, so marking a staged row written is a HOT update (migration 0021);
    an upload's chunks are stored uncompressed (0023). Downgraded, both are the defaults."""
    options = "SELECT reloptions FROM pg_class WHERE relname = 'import_rows'"
    storage = ("SELECT a.attstorage FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
               "WHERE c.relname = 'upload_chunks' AND a.attname = 'data'")
    with throwaway_pg_database("kamen_mig") as url:
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "x", "INSTANCE_PATH": str(tmp_path)})
        with app.app_context():
            upgrade()
            assert db.session.scalar(sa.text(options)) == ["fillfactor=50"]
            assert db.session.scalar(sa.text(storage)) == "e"
            db.session.remove()
            downgrade(revision="0020_scorecards")
            assert db.session.scalar(sa.text(options)) is None
            assert db.session.scalar(sa.text(storage)) == "x"
            db.session.remove()
            db.engine.dispose()


def test_staged_rows_keep_their_edits_and_a_downgrade_writes_every_text_back(empty_db_url, tmp_path):
    """Migration 0024: a staged row keeps only the texts that are not its cells'; going back,
    raw holds every mapped cell's text again, with the edits over them."""
    import io

    from kamen.models import ImportRow
    from kamen.services.importing import staging
    from kamen.services.suppliers import default_supplier

    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_db_url, "SECRET_KEY": "x", "INSTANCE_PATH": str(tmp_path)})
    with app.app_context():
        upgrade()
        batch = staging.create_batch(db.session, io.BytesIO(b"code,name\n"), "a.csv",
                                     supplier=default_supplier(db.session))
        batch.mapping = {"code": 0, "name": 1, "cost_price": 2, "stock": 3}
        db.session.add(ImportRow(batch_id=batch.id, line=5, cells=[" QB10 ", "Q币", 9.5, 100.0], action="create",
                                 edits={"cost_price": "9.60"}))
        db.session.commit()
        db.session.remove()
        downgrade(revision="0023_upload_chunks_uncompressed")
        raw = db.session.scalar(sa.text("SELECT raw FROM import_rows"))
        assert (json.loads(raw) if isinstance(raw, str) else raw) == {
            "code": "QB10", "name": "Q币", "cost_price": "9.60", "stock": "100"}
        db.session.remove()
        upgrade()
        db.engine.dispose()
