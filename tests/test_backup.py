"""Backups: deploy/backup.sh dumps a real migrated PostgreSQL database, deploy/restore.sh
restores it into a new one, and the shop serves the same goods from the restored copy."""
import os
import subprocess
from pathlib import Path

import sqlalchemy as sa
from flask_migrate import upgrade

from kamen import create_app
from kamen.extensions import db
from kamen.models import Product
from kamen.services.demo import seed_demo
from tests.conftest import throwaway_pg_database

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def _app(url, tmp_path):
    return create_app({"SQLALCHEMY_DATABASE_URI": url, "INSTANCE_PATH": str(tmp_path / "instance"),
                       "SECRET_KEY": "backup-secret", "TESTING": True, "JOBS_SYNC": True, "REDIS_URL": None})


def test_backup_restores_into_a_new_database_that_serves_the_shop(tmp_path):
    backups = tmp_path / "backups"
    with throwaway_pg_database("kamen_backup_src") as source, throwaway_pg_database("kamen_backup_dst") as target:
        app = _app(source, tmp_path)
        with app.app_context():
            upgrade()  # the real migrations, as production has them
            seed_demo(db.session)
            names = set(db.session.scalars(sa.select(Product.name).where(Product.is_listed.is_(True))).all())
            db.engine.dispose()
        assert len(names) >= 20

        env = {**os.environ, "DATABASE_URL": source, "KAMEN_BACKUP_DIR": str(backups), "KAMEN_BACKUP_KEEP_DAYS": "14"}
        dumped = subprocess.run([str(DEPLOY / "backup.sh")], env=env, capture_output=True, text=True, timeout=120)
        assert dumped.returncode == 0, dumped.stderr
        dump = Path(dumped.stdout.strip())
        assert dump.parent == backups and dump.stat().st_size > 0 and not list(backups.glob("*.partial"))

        restored = subprocess.run([str(DEPLOY / "restore.sh"), str(dump), target], capture_output=True, text=True,
                                  timeout=120)
        assert restored.returncode == 0, restored.stderr

        copy = _app(target, tmp_path)
        with copy.app_context():
            client = copy.test_client()
            assert client.get("/readyz").status_code == 200  # schema at the code's head after restore
            home = client.get("/").get_data(as_text=True)
            restored_names = set(db.session.scalars(sa.select(Product.name).where(Product.is_listed.is_(True))).all())
            product_id = db.session.scalar(sa.select(Product.id).where(Product.is_listed.is_(True)).limit(1))
            product_page = client.get(f"/p/{product_id}")
            db.session.remove()
            db.engine.dispose()
        assert restored_names == names
        assert product_page.status_code == 200
        assert any(name in home for name in names)
