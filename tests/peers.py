"""A second, real kamen serving as 主站 over HTTP, for 分站-side tests."""
import threading
from decimal import Decimal

import pytest
from werkzeug.serving import make_server

from kamen import create_app
from kamen.extensions import db
from kamen.services import stations
from kamen.services.demo import seed_demo


@pytest.fixture
def main_station(tmp_path):
    """The 主站: its own app and SQLite database (demo catalog, one 分站 key), on a free port."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'main.db'}",
                      "INSTANCE_PATH": str(tmp_path / "main-instance"),
                      "SECRET_KEY": "main-secret", "TESTING": True, "JOBS_SYNC": True, "REDIS_URL": None})
    with app.app_context():
        db.create_all()
        seed_demo(db.session)
        station, secret = stations.create_station(db.session, "测试分站", Decimal("2"), Decimal("0"))
        app_id = station.app_id
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"app": app, "url": f"http://127.0.0.1:{server.server_port}", "app_id": app_id, "secret": secret}
    server.shutdown()
    thread.join(timeout=5)
