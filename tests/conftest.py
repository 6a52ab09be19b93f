"""Fixtures shared by the whole suite.

Every test that uses ``app`` runs once per database backend: SQLite, and
PostgreSQL on the real server (a throwaway database per test session).
``KAMEN_TEST_DBS=sqlite`` narrows the list; ``KAMEN_REQUIRE_SERVICES=1``
(set by CI) turns "PostgreSQL/Redis not running" into a failure, not a skip.
"""
import os
import uuid
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from kamen import create_app
from kamen.extensions import db
from tests.helpers import AuthActions, CSRFClient

# Fixtures shared across modules: one browser per test session, the simulator, a 主站,
# the 易支付 demo gateway and a notify receiver.
pytest_plugins = ["tests.browser", "tests.peers", "tests.sync_fixtures", "tests.demo_gateway"]


def _cheap_password_hashing():
    """Passwords are hashed with argon2's cheapest parameters in this process: at the
    production cost (~0.12 s a hash and as much a check) the suite's logins and order
    passwords took minutes. The hashes stay argon2 and are checked the same way;
    servers and workers the tests start as processes keep the production cost."""
    from argon2 import PasswordHasher

    from kamen.services import auth, ordering

    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    auth._hasher = ordering._hasher = cheap
    auth._DUMMY_HASH = cheap.hash(uuid.uuid4().hex)


_cheap_password_hashing()

PG_SERVER = os.environ.get("KAMEN_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("KAMEN_TEST_REDIS", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = os.environ.get("KAMEN_REQUIRE_SERVICES") == "1"
BACKENDS = [b for b in os.environ.get("KAMEN_TEST_DBS", "sqlite,postgresql").split(",") if b]


def pytest_configure(config):
    config.addinivalue_line("markers", "backends(*names): run only on these database backends")


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("backends")
        wanted = [b for b in BACKENDS if marker is None or b in marker.args]
        metafunc.parametrize("backend", wanted, indirect=True)


def _unavailable(what, exc):
    message = f"{what} is not reachable: {exc}"
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def throwaway_pg_database(prefix):
    """A new, empty PostgreSQL database (its URL), dropped afterwards."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        _unavailable("PostgreSQL", exc)
    try:
        yield sa.engine.make_url(PG_SERVER).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_url():
    """A fresh PostgreSQL database for this test session."""
    with throwaway_pg_database("kamen_test") as url:
        yield url


@pytest.fixture
def backend(request):
    return request.param


@pytest.fixture
def db_url(backend, tmp_path, request):
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'kamen.db'}"
    return request.getfixturevalue("pg_url")


_pg_schema_ready = set()


@pytest.fixture
def app(db_url, tmp_path):
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": db_url,
            "INSTANCE_PATH": str(tmp_path / "instance"),  # uploads of parallel runs never meet
            "SECRET_KEY": "test-secret",
            "TESTING": True,
            "JOBS_SYNC": True,
            "REDIS_URL": None,
            # The shop reloads its category tree and writes views at once.
            "SHOP_CACHE_SECONDS": 0,
            "SHOP_VIEW_WRITE_SECONDS": 0,
        }
    )
    with app.app_context():
        if db_url.startswith("sqlite"):
            db.create_all()
        else:
            if db_url not in _pg_schema_ready:
                db.drop_all()
                db.create_all()
                _pg_schema_ready.add(db_url)
            _empty_all()
        yield app
        db.session.remove()
        db.engine.dispose()


def _empty_all():
    """Empty every table and restart every id, as TRUNCATE … RESTART IDENTITY would:
    DELETE, dependents first, is ten times faster on the few rows a test leaves."""
    with db.engine.begin() as conn:
        for table in reversed(db.metadata.sorted_tables):
            conn.execute(table.delete())
        conn.execute(sa.text("SELECT setval(c.oid, 1, false) FROM pg_class c WHERE c.relkind = 'S'"))


@pytest.fixture
def client(app):
    app.test_client_class = CSRFClient
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def auth(client, app):
    return AuthActions(client, app)


@pytest.fixture
def redis_url():
    from redis import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    conn = Redis.from_url(REDIS_URL)
    try:
        conn.ping()
    except RedisConnectionError as exc:
        _unavailable("Redis", exc)
    finally:
        conn.close()
    return REDIS_URL


@pytest.fixture
def shop_caching(app):
    """The shop as in production: category tree reused, views written in batches."""
    from kamen.services import catalog

    catalog.forget_shop_tree()
    app.config.update(SHOP_CACHE_SECONDS=60, SHOP_VIEW_WRITE_SECONDS=3600)
    yield
    catalog.write_views(db.session)  # never into the next test's database
    catalog.forget_shop_tree()


@pytest.fixture
def count_queries(app):
    """Context manager counting the SQL statements run inside it."""
    from contextlib import contextmanager

    @contextmanager
    def counting():
        statements = []

        def before(conn, cursor, statement, *args):
            statements.append(statement)

        sa.event.listen(db.engine, "before_cursor_execute", before)
        try:
            yield statements
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", before)

    return counting
