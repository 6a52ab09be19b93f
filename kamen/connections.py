"""Database connections that survive a PostgreSQL restart or ``pg_terminate_backend``.

Two cheap parts instead of ``pool_pre_ping`` (a ``SELECT 1`` round trip on
every checkout):

- On checkout, a pooled psycopg connection whose socket is readable while idle
  has been closed by the server (the backend sends its FATAL message and hangs
  up): it is dropped and the pool opens a new one. One ``poll`` syscall, no
  round trip. This covers every request that starts after the fault.
- A GET or HEAD request whose connection died mid-request (the fault came while
  it ran) is dispatched again on a fresh connection (up to three tries):
  reads have no side effects to repeat. Other methods answer the error page, their transaction
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
# A restart is one fault; a second one during the retry (a backend killed
# again, a failover) gets one more try.
READ_ATTEMPTS = 3


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


def _connection_lost(exc):
    """The connection died, or could not be opened, rather than the statement failing."""
    if exc.connection_invalidated:
        return True
    if not type(exc.orig).__module__.startswith("psycopg"):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    # 57P: admin or crash shutdown, cannot connect now. No SQLSTATE on an OperationalError:
    # the client lost or could not open the connection (e.g. killed while it was being set up).
    return sqlstate.startswith("57P") or (isinstance(exc, sa.exc.OperationalError) and not sqlstate)


class Kamen(Flask):
    """Flask, with a read request retried when its database connection died under it."""

    def full_dispatch_request(self):
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                return super().full_dispatch_request()
            except sa.exc.DBAPIError as exc:
                from flask import g, request

                from kamen.extensions import db

                retry = _connection_lost(exc) and request.method in RETRIED_METHODS and attempt < READ_ATTEMPTS
                if not retry:
                    raise
                self.logger.warning("database connection lost during %s %s; retrying", request.method, request.path)
                db.session.remove()
                g.pop("_login_user", None)  # loaded through the lost session: load the admin again

    def do_teardown_appcontext(self, exc=None):
        try:
            super().do_teardown_appcontext(exc)
        except sa.exc.DBAPIError as error:
            if not _connection_lost(error):
                raise
            from kamen.extensions import db

            self.logger.warning("database connection lost after the response was ready: %s", error.orig)
            db.session.registry.clear()
