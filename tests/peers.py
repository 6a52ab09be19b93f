"""Second (and third) real kamens serving as 主站 over HTTP, for 分站-side tests."""
import threading
from contextlib import contextmanager
from decimal import Decimal

import pytest
from werkzeug.serving import make_server

from kamen import create_app
from kamen.extensions import db
from kamen.services import stations
from kamen.services.demo import seed_demo


@contextmanager
def kamen_peer(tmp_path, name, seed=True, markup_percent="2"):
    """A kamen with its own app and SQLite database (the demo catalog when ``seed``) and one 分站 key, on a free port."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / f'{name}.db'}",
                      "INSTANCE_PATH": str(tmp_path / f"{name}-instance"),
                      "SECRET_KEY": f"{name}-secret", "TESTING": True, "JOBS_SYNC": True, "REDIS_URL": None})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    app.config["PUBLIC_URL"] = url
    with app.app_context():
        db.create_all()
        if seed:
            seed_demo(db.session)
        station, secret = stations.create_station(db.session, "测试分站", Decimal(markup_percent), Decimal("0"))
        app_id = station.app_id
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"app": app, "url": url, "app_id": app_id, "secret": secret}
    finally:
        server.shutdown()
        thread.join(timeout=5)
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def main_station(tmp_path):
    """The 主站: the demo catalog, one 分站 key (markup 2%)."""
    with kamen_peer(tmp_path, "main") as peer:
        yield peer
