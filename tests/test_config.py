from kamen import create_app
from kamen.config import _normalize_db_url


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
    app = create_app()
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u:p@db/kamen"
    assert app.config["REDIS_URL"] == "redis://cache:6379/1"


def test_db_url_normalization_keeps_explicit_driver():
    assert _normalize_db_url("postgresql+psycopg://x/y") == "postgresql+psycopg://x/y"
    assert _normalize_db_url("postgresql://x/y") == "postgresql+psycopg://x/y"
    assert _normalize_db_url("sqlite:///a.db") == "sqlite:///a.db"
