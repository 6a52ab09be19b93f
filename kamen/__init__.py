"""kamen: storefront and back office for a 卡盟分站."""
import os


def create_app(config=None):
    """Build the app; ``config`` is a dict of settings that override the environment
    (``INSTANCE_PATH`` too: where the SQLite file, uploads and the generated secret live).

    Imports happen here, not at module level, so light processes (``rq cron``)
    can use ``kamen.config`` without loading Flask and SQLAlchemy."""
    from kamen.config import Config
    from kamen.connections import Kamen
    from kamen import lazy_migrate
    from kamen.extensions import csrf, db, login_manager

    config = dict(config or {})
    instance_path = config.pop("INSTANCE_PATH", None) or os.environ.get("KAMEN_INSTANCE_PATH") or None
    app = Kamen(__name__, instance_path=instance_path)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_object(Config(app.instance_path, config))

    if app.config["PROXY_COUNT"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        count = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)

    db.init_app(app)
    lazy_migrate.register(
        app,
        db,
        directory=os.path.join(os.path.dirname(app.root_path), "migrations"),
        render_as_batch=True,  # SQLite needs batch mode for ALTERs
        compare_type=True,
    )
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.user_loader(_load_admin)

    from kamen import models  # noqa: F401  (register every table)
    from kamen.blueprints.admin import bp as admin_bp
    from kamen.blueprints.api import bp as api_bp
    from kamen.blueprints.health import bp as health_bp
    from kamen.blueprints.job_view import register_job_view
    from kamen.blueprints.shop import bp as shop_bp
    from kamen.cli import register_cli
    from kamen.security import register_security_headers
    from kamen.templating import register_templating

    app.register_blueprint(shop_bp)
    app.register_blueprint(admin_bp, url_prefix="/admin")
    app.register_blueprint(api_bp)
    if app.config["DEMO_GATEWAY"]:
        from kamen.blueprints.demopay import bp as demopay_bp

        app.register_blueprint(demopay_bp, url_prefix="/demopay")
    app.register_blueprint(health_bp)
    register_job_view(app)
    register_templating(app)
    register_cli(app)
    register_security_headers(app)
    _register_error_pages(app)
    return app


def _load_admin(user_id):
    from kamen.extensions import db
    from kamen.services.auth import load_session_user

    return load_session_user(db.session, user_id)


def _register_error_pages(app):
    from flask import render_template
    from flask_wtf.csrf import CSRFError

    from kamen.extensions import db

    @app.errorhandler(404)
    def not_found(_e):
        return render_template("errors/404.html"), 404

    @app.errorhandler(CSRFError)
    def csrf_failed(_e):
        return render_template("errors/400.html", reason="页面已过期或来源无效，请刷新后重试。"), 400

    @app.errorhandler(413)
    def too_large(_e):
        limit = app.config["MAX_CONTENT_LENGTH"] // (1024 * 1024)
        return render_template("errors/400.html", reason=f"上传的内容太大（上限约 {limit} MB），请拆分后分批上传。"), 413

    @app.errorhandler(500)
    def server_error(_e):
        db.session.rollback()
        return render_template("errors/500.html"), 500
