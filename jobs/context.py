"""App context for jobs, whether run by `rq worker`, a thread or a test."""
from contextlib import contextmanager

from flask import current_app, has_app_context

_app = None


def preload_app():
    """Build the app for this process now (the worker does, before it forks its horses).
    It serves no pages (kamen.config: WORKER)."""
    global _app
    if _app is None:
        from kamen import create_app

        _app = create_app({"WORKER": True})
    return _app


@contextmanager
def app_context():
    if has_app_context():
        yield current_app
        return
    with preload_app().app_context():
        yield _app
