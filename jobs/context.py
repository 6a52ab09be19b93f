"""App context for jobs, whether run by `rq worker`, a thread or a test."""
from contextlib import contextmanager

from flask import current_app, has_app_context

_app = None


@contextmanager
def app_context():
    if has_app_context():
        yield current_app
        return
    global _app
    if _app is None:
        from kamen import create_app

        _app = create_app()
    with _app.app_context():
        yield _app
