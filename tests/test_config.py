import os
import subprocess
import sys
from pathlib import Path

import pytest

from kamen import create_app
from kamen.config import ConfigError, _normalize_db_url, production_mode

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_embedded_default_is_sqlite_under_instance(tmp_path, monkeypatch):
    for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAMEN_INSTANCE_PATH", str(tmp_path / "instance"))
    app = create_app()
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'instance' / 'kamen.db'}"
    assert app.config["REDIS_URL"] is None
    # A secret key is generated once and kept, so sessions survive restarts.
    assert app.config["SECRET_KEY"] == create_app().config["SECRET_KEY"]
    assert len(app.config["SECRET_KEY"]) == 64


def test_environment_selects_postgresql_and_redis(tmp_path, monkeypatch):
    monkeypatch.setenv("KAMEN_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db/kamen")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/1")
    monkeypatch.setenv("SECRET_KEY", "s3cret")
    app = create_app()
    assert app.config["PRODUCTION"] and app.config["SECRET_KEY"] == "s3cret"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u:p@db/kamen"
    assert app.config["REDIS_URL"] == "redis://cache:6379/1"


def test_db_url_normalization_keeps_explicit_driver():
    assert _normalize_db_url("postgresql+psycopg://x/y") == "postgresql+psycopg://x/y"
    assert _normalize_db_url("postgresql://x/y") == "postgresql+psycopg://x/y"
    assert _normalize_db_url("sqlite:///a.db") == "sqlite:///a.db"


def test_production_mode_is_a_shared_database_or_redis_or_said_plainly():
    assert not production_mode({})
    assert not production_mode({"KAMEN_SHOP_NAME": "x"})
    assert production_mode({"DATABASE_URL": "postgresql://x/y"})
    assert production_mode({"REDIS_URL": "redis://x"})
    assert production_mode({"KAMEN_ENV": "production"})


def test_production_mode_without_secret_key_refuses_to_build_the_app(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("KAMEN_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("KAMEN_ENV", "production")
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        create_app()
    assert not (tmp_path / "secret_key").exists()  # no per-machine key generated behind the operator's back


@pytest.mark.parametrize("command", [
    ["flask", "--app", "kamen", "doctor"],
    ["flask", "--app", "kamen", "db", "upgrade"],
    ["gunicorn", "-w", "1", "-b", "127.0.0.1:0", "kamen.wsgi:app"],
    ["rq", "worker", "-w", "jobs.worker.AppWorker", "--burst", "--url", "{redis}", "kamen-no-secret"],
    ["rq", "cron", "jobs.cron", "--url", "{redis}"],
], ids=["flask-doctor", "flask-db-upgrade", "web", "worker", "cron"])
def test_every_process_stops_at_start_without_secret_key_in_production(tmp_path, redis_url, command):
    """Web, worker, cron and flask commands, started from another directory, exit with the reason."""
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "FLASK_APP")}
    # The database is unreachable on purpose: the process must stop on the key before connecting to it.
    env.update(DATABASE_URL="postgresql://kamen@127.0.0.1:1/kamen", REDIS_URL=redis_url,
               KAMEN_JOB_QUEUE="kamen-no-secret", KAMEN_INSTANCE_PATH=str(tmp_path / "instance"))
    argv = [str(BIN / command[0]), *(arg.format(redis=redis_url) for arg in command[1:])]
    result = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "必须设置 SECRET_KEY" in result.stdout + result.stderr


def test_paths_do_not_depend_on_the_working_directory(tmp_path, monkeypatch):
    """Started from anywhere, the app finds its migrations, templates and default instance folder."""
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "REDIS_URL", "KAMEN_INSTANCE_PATH", "KAMEN_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SECRET_KEY", "x")
    app = create_app()
    assert Path(app.instance_path) == ROOT / "instance"
    assert Path(app.extensions["migrate"].directory) == ROOT / "migrations"
    assert not (tmp_path / "instance").exists()
