"""Database connections that survive a PostgreSQL restart or ``pg_terminate_backend``.

Two cheap parts instead of ``pool_pre_ping`` (a ``SELECT 1`` round trip on
every checkout):

- On checkout, a pooled psycopg connection whose socket is readable while idle
  has been closed by the server (the backend sends its FATAL message and hangs
  up): it is dropped and the pool opens a new one. One ``poll`` syscall, no
  round trip. This covers every request that starts after the fault.
- A GET or HEAD request whose connection died mid-request (the fault came while
  it ran) is dispatched once more on a fresh connection: reads have no side
  effects to repeat. Other methods answer the error page, their transaction
  rolled back.
- A connection that dies after the response is ready fails only the closing
  ROLLBACK of the request's session: nothing is lost (the server already
  rolled back), so the response stands and the dead connection is discarded.
"""
import select

import sqlalchemy as sa
from flask import Flask
from sqlalchemy import event
from sqlalchemy.pool import Pool

RETRIED_METHODS = {"GET", "HEAD"}


@event.listens_for(Pool, "checkout")
def _drop_closed_connection(dbapi_connection, _record, _proxy):
    pgconn = getattr(dbapi_connection, "pgconn", None)  # psycopg only; SQLite has no socket
    if pgconn is None:
        return
    if _readable_while_idle(pgconn.socket):
        raise sa.exc.DisconnectionError("server closed the connection while it was idle in the pool")


def _readable_while_idle(fd):
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(0))


class Kamen(Flask):
    """Flask, with a read request retried once when its database connection died under it."""

    def full_dispatch_request(self):
        try:
            return super().full_dispatch_request()
        except sa.exc.DBAPIError as exc:
            from flask import g, request

            from kamen.extensions import db

            if not exc.connection_invalidated or request.method not in RETRIED_METHODS:
                raise
            self.logger.warning("database connection lost during %s %s; retrying once", request.method, request.path)
            db.session.remove()
            g.pop("_login_user", None)  # loaded through the lost session: load the admin again
            return super().full_dispatch_request()

    def do_teardown_appcontext(self, exc=None):
        try:
            super().do_teardown_appcontext(exc)
        except sa.exc.DBAPIError as error:
            if not error.connection_invalidated:
                raise
            from kamen.extensions import db

            self.logger.warning("database connection lost after the response was ready: %s", error.orig)
            db.session.registry.clear()
