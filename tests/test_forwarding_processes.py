"""一键代发 with real processes on PostgreSQL and Redis: the job on a real `rq worker`,
killed with -9 while its order request is with the supplier, resumes by query."""
import pytest
import sqlalchemy as sa

from kamen import queue
from kamen.extensions import db
from kamen.models import AttemptStatus, ForwardAttempt, OrderStatus
from kamen.timeutil import utcnow
from tests.forwarding_helpers import (  # noqa: F401
    attempts,
    buy_and_pay,
    channel,
    events,
    fresh,
    fulu_supplier,
    note,
    placed,
    supplier_product,
)
from tests.processes import kill_worker, wait_for
from tests.test_job_processes import deployment  # noqa: F401

pytestmark = pytest.mark.backends("postgresql")


def _order_request_arrived(sim):
    return any(b"fulu.order.card.add" in body for _m, _p, _t, body in list(sim.requests))


def test_paid_orders_are_forwarded_by_a_real_worker(deployment, client, simulator, fulu_supplier, channel):
    product = supplier_product(fulu_supplier, simulator)
    orders = [buy_and_pay(client, channel, product, contact=f"1380013800{i}") for i in range(3)]
    assert {o.status for o in orders} == {OrderStatus.FORWARDING}  # waiting in Redis, not run in-process
    deployment.burst()
    for order in orders:
        assert fresh(order).status is OrderStatus.DELIVERED and len(placed(simulator, order)) == 1


def test_a_worker_killed_mid_request_resumes_by_query_not_a_second_order(deployment, client, simulator,
                                                                          fulu_supplier, channel, tmp_path):
    product = supplier_product(fulu_supplier, simulator)
    order = buy_and_pay(client, channel, product)
    simulator.latency = 2.0  # every answer takes 2 s: the worker dies while the order request is out
    worker = deployment.worker(tmp_path / "worker.log")
    try:
        wait_for(lambda: _order_request_arrived(simulator), timeout=60)
    finally:
        horses = kill_worker(worker)
    assert horses, "the job ran in a work-horse"
    simulator.latency = 0
    [attempt] = attempts(order)
    assert attempt.status is AttemptStatus.SENDING and fresh(order).status is OrderStatus.FORWARDING
    wait_for(lambda: len(simulator.orders) == 1, timeout=10)  # the supplier did take it

    # Two minutes on, the minute tick's poll asks the supplier (as the schedule would).
    db.session.execute(sa.update(ForwardAttempt).where(ForwardAttempt.id == attempt.id)
                       .values(next_poll_at=utcnow()))
    db.session.commit()
    assert queue.enqueue("jobs.tick.every_minute").backend == "rq"
    deployment.burst()

    order = fresh(order)
    assert order.status is OrderStatus.DELIVERED, [e.message for e in events(order)]
    assert len(placed(simulator, order)) == 1 and len(attempts(order)) == 1
    assert "CARD0001" in note(order)
    assert sum(b"fulu.order.card.add" in body for *_x, body in simulator.requests) == 1



def test_the_same_order_picked_up_by_two_workers_at_once_is_placed_once(deployment, client, simulator,
                                                                         fulu_supplier, channel, tmp_path):
    product = supplier_product(fulu_supplier, simulator)
    order = buy_and_pay(client, channel, product)
    # RQ ran it twice (a retry, a second enqueue after a lost answer): two jobs, two workers, at once.
    queue.enqueue("jobs.forwarding.forward_order", order.id, job_id=f"kamen-forward-{order.id}-again")
    simulator.latency = 0.3
    workers = [deployment.worker(tmp_path / f"worker{i}.log") for i in range(2)]
    try:
        wait_for(lambda: fresh(order).status is OrderStatus.DELIVERED, timeout=60)
        wait_for(lambda: queue.rq_queue().count == 0, timeout=30)
    finally:
        for worker in workers:
            kill_worker(worker)
    assert len(placed(simulator, order)) == 1 and len(attempts(order)) == 1
    assert [e.kind for e in events(order)].count("delivered") == 1


def test_callbacks_racing_on_gunicorn_deliver_once(app, db_url, tmp_path, client, simulator, fulu_supplier, channel):
    import concurrent.futures

    import requests

    from tests.helpers import gunicorn_server

    simulator.settle_after = 10  # only the callbacks say it is done
    product = supplier_product(fulu_supplier, simulator, "1002")
    order = buy_and_pay(client, channel, product)
    assert order.status is OrderStatus.FORWARDING
    headers, body = simulator.fulu_callback(order.order_no)
    with gunicorn_server(db_url, tmp_path, workers=2, threads=4) as base:
        url = f"{base}/api/suppliers/{fulu_supplier.id}/callback"
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _i: requests.post(url, data=body, headers=headers, timeout=30), range(8)))
    assert [a.text for a in answers] == ["success"] * 8
    order = fresh(order)
    assert order.status is OrderStatus.DELIVERED
    kinds = [e.kind for e in events(order)]
    assert kinds.count("delivered") == 1 and kinds.count("forward_duplicate") == 7
