"""Flask-Migrate, loaded when a migration is run rather than in every process.

Flask-Migrate imports Alembic (about 11 MiB). Web and worker processes never
migrate, so the app gets a stand-in: ``app.extensions["migrate"]`` knows the
directory, and turns into Flask-Migrate's own config on first use (the
``flask db`` commands, ``flask_migrate.upgrade()`` in tests and scripts,
``migrations/env.py``); ``flask db`` is a command group that loads the real
one when it is listed or called.
"""
import click


def register(app, db, **options):
    """What ``Migrate().init_app(app, db, **options)`` registers, without importing it yet."""
    app.extensions["migrate"] = _LazyConfig(app, db, options)
    app.cli.add_command(_LazyDbGroup("db", help="数据库迁移（Flask-Migrate / Alembic）。"))


class _LazyConfig:
    def __init__(self, app, db, options):
        self._app, self._db, self._options = app, db, options
        self.directory = str(options["directory"])

    def __getattr__(self, name):
        """Anything beyond the directory: load Flask-Migrate, which replaces this stand-in."""
        from flask_migrate import Migrate

        Migrate().init_app(self._app, self._db, **self._options)
        return getattr(self._app.extensions["migrate"], name)


class _LazyDbGroup(click.Group):
    """Stands in the command list; parsing ``flask db …`` hands over to Flask-Migrate's group."""

    def make_context(self, info_name, args, parent=None, **extra):
        from flask_migrate.cli import db

        return db.make_context(info_name, args, parent=parent, **extra)
