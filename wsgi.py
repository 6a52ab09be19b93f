"""Entry point for gunicorn: `gunicorn wsgi:app`."""
from kamen import create_app

app = create_app()
