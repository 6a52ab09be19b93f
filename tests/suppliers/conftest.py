import pytest

from kamen.suppliers import adapter_for
from tests.suppliers.simulator import Simulator, make_catalog, serve

CLIENT_TIMEOUT = 2


@pytest.fixture
def simulator():
    """A fresh supplier simulator with four products, served over real HTTP."""
    sim = Simulator(make_catalog(4))
    with serve(sim.app()) as url:
        sim.url = url
        yield sim


@pytest.fixture
def fulu(simulator):
    return adapter_for("fulu", {"base_url": simulator.url, "app_key": simulator.fulu_app_key,
                                "secret": simulator.fulu_secret, "timeout": CLIENT_TIMEOUT})


@pytest.fixture
def acg(simulator):
    return adapter_for("acgfaka", {"base_url": simulator.url, "app_id": simulator.acg_app_id,
                                   "secret": simulator.acg_app_key, "timeout": CLIENT_TIMEOUT})


@pytest.fixture
def upstream(simulator):
    app_id, secret = next(iter(simulator.kamen_stations.items()))
    return adapter_for("kamen", {"base_url": simulator.url, "app_id": app_id, "secret": secret,
                                 "timeout": CLIENT_TIMEOUT})


@pytest.fixture(params=["fulu", "acg", "upstream"])
def any_adapter(request):
    """Each API adapter in turn, for behaviour they must share."""
    return request.getfixturevalue(request.param)
