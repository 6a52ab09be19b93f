"""售后 between kamens: the 主站's ticket endpoints for its 分站 (under the signed
upstream API) and the 分站's endpoint for the 主站's signed callbacks.

Wire format: docs/aftersales.md.
"""
from flask import g, jsonify, request

from kamen.blueprints.api import bp
from kamen.blueprints.api.upstream import PREFIX, _error
from kamen.extensions import db
from kamen.services import ticket_forwarding
from kamen.services.aftersales import TicketRefused
from kamen.services.ticket_forwarding import CALLBACK_PATH
from kamen.suppliers.kamen_signing import request_target


@bp.post(f"{PREFIX}/tickets")
def upstream_ticket_create():
    try:
        ticket, created = ticket_forwarding.open_station_ticket(db.session, g.station, request.get_json(silent=True))
    except TicketRefused as exc:
        return _error(400, "bad_request", str(exc))
    return jsonify({"ticket": ticket_forwarding.ticket_json(db.session, ticket)}), 201 if created else 200


def _station_ticket(ticket_no):
    return ticket_forwarding.station_ticket(db.session, g.station, ticket_no)


@bp.get(f"{PREFIX}/tickets/<ticket_no>")
def upstream_ticket_status(ticket_no):
    ticket = _station_ticket(ticket_no)
    if ticket is None:
        return _error(404, "not_found", "没有这个工单")
    return jsonify({"ticket": ticket_forwarding.ticket_json(db.session, ticket)})


@bp.post(f"{PREFIX}/tickets/<ticket_no>/replies")
def upstream_ticket_reply(ticket_no):
    ticket = _station_ticket(ticket_no)
    if ticket is None:
        return _error(404, "not_found", "没有这个工单")
    body = request.get_json(silent=True)
    try:
        ticket_forwarding.station_add_reply(db.session, g.station, ticket, body.get("text") if isinstance(body, dict) else None)
    except TicketRefused as exc:
        return _error(400, "bad_request", str(exc))
    return jsonify({"ticket": ticket_forwarding.ticket_json(db.session, ticket)})


@bp.post(CALLBACK_PATH)
def ticket_callback():
    """The 主站 tells us (its 分站) about a ticket we forwarded; signed with our key there."""
    status, code, message = ticket_forwarding.receive_callback(
        db.session, request.headers, request.method, request_target(request), request.get_data())
    if status != 200:
        return _error(status, code, message)
    return jsonify({"ok": True})
