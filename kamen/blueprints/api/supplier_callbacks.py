"""Suppliers' order notifications (一键代发 results): /api/suppliers/<id>/callback.

The adapter verifies the signature; the answer is what the protocol expects
(``success`` stops a Fulu-style gateway's retries).
"""
from flask import Response, request

from kamen.blueprints.api import bp
from kamen.extensions import db
from kamen.services import forwarding

MAX_CALLBACK_BYTES = 64 * 1024


@bp.route("/api/suppliers/<int:supplier_id>/callback", methods=["GET", "POST"])
def supplier_callback(supplier_id):
    if (request.content_length or 0) > MAX_CALLBACK_BYTES:
        return Response("too large", 413, content_type="text/plain")
    body = request.get_data() if request.method == "POST" else request.query_string
    answer = forwarding.handle_callback(db.session, supplier_id, dict(request.headers), body)
    return Response(answer.body, answer.status, content_type="text/plain; charset=utf-8")
