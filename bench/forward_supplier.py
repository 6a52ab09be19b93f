"""The supplier side of forward_bench.py: the test suite's supplier simulator (Fulu-style gateway)
under gunicorn (one process, threads: its orders live in memory), plus a count of its orders."""
from decimal import Decimal

from flask import jsonify

from tests.suppliers.simulator import Simulator, make_catalog

sim = Simulator(make_catalog(1))
sim.products["1001"].stock = 10**7
sim.balance = Decimal("100000000")
app = sim.app()


@app.get("/_bench/orders")
def orders():
    keys = [o["key"] for o in sim.orders.values()]
    return jsonify(orders=len(keys), distinct=len(set(keys)))
