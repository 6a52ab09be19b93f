"""Probes for a load balancer or process supervisor.

``/healthz``: the process answers (no database touched: a database outage must
not make every web process look dead and get restarted).
``/readyz``: this process can serve: database and Redis reachable, schema
migrated to the code's head. 503 with the failing checks otherwise.
"""
from flask import Blueprint, current_app, jsonify

from kamen import queue
from kamen.extensions import db
from kamen.services import operations

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    problems = operations.readiness(current_app, db.session, queue.redis_connection())
    failing = {name: reason for name, reason in problems.items() if reason}
    body = {name: (reason or "ok") for name, reason in problems.items()}
    return jsonify(status="fail" if failing else "ok", checks=body), 503 if failing else 200
