"""`flask` commands: admin accounts, demo data, scheduled actions by hand."""
import click
import sqlalchemy as sa

from kamen.extensions import db


def register_cli(app):
    app.cli.add_command(create_admin_command)
    app.cli.add_command(seed_demo_command)
    app.cli.add_command(purge_logins_command)
    app.cli.add_command(sync_supplier_command)
    app.cli.add_command(dispatch_syncs_command)
    app.cli.add_command(import_products_command)
    app.cli.add_command(create_api_token_command)
    app.cli.add_command(retry_demo_notifies_command)
    app.cli.add_command(doctor_command)
    app.cli.add_command(sweep_jobs_command)
    app.cli.add_command(purge_imports_command)
    app.cli.add_command(create_demo_channel_command)


@click.command("create-admin")
@click.argument("username")
@click.option("--password", help="Leave out to generate a one-time password, printed once.")
@click.option("--if-none", is_flag=True, help="Only when the shop has no admin yet (first run).")
def create_admin_command(username, password, if_none):
    """Create an admin (or reset their password)."""
    from kamen.models import AdminUser
    from kamen.services.auth import create_admin

    if if_none and db.session.scalar(sa.select(sa.func.count()).select_from(AdminUser)):
        click.echo("已有管理员账号，跳过创建。")
        return
    try:
        _user, password_used = create_admin(db.session, username, password)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"管理员 {username} 已就绪。")
    if not password:
        click.echo(f"一次性密码（只显示这一次，请登录后妥善保管）：{password_used}")


@click.command("seed-demo")
@click.option("--if-empty", is_flag=True, help="Only when there are no products yet.")
def seed_demo_command(if_empty):
    """Load the demo catalog (categories and about 30 products)."""
    from kamen.models import Product
    from kamen.services.demo import seed_demo

    if if_empty and db.session.scalar(sa.select(sa.func.count()).select_from(Product)):
        click.echo("已有商品，跳过演示数据。")
        return
    n = seed_demo(db.session)
    click.echo(f"已写入演示商品 {n} 个。")


@click.command("purge-login-attempts")
@click.option("--days", default=30, show_default=True)
def purge_logins_command(days):
    """Delete login attempt records older than DAYS (also scheduled)."""
    from jobs.maintenance import purge_login_attempts

    click.echo(f"已清理 {purge_login_attempts(days)} 条登录记录。")


@click.command("sweep-jobs")
def sweep_jobs_command():
    """What the schedule does every minute: resume or fail work whose job died or never started."""
    from jobs.maintenance import sweep_jobs

    swept = sweep_jobs()
    click.echo(f"已重新排队：{len(swept['enqueued'])}，已标记失败：{len(swept['failed'])}")


@click.command("purge-imports")
def purge_imports_command():
    """What the schedule does nightly: delete old uploads and staged rows (totals are kept)."""
    from jobs.maintenance import purge_old_imports

    click.echo(f"已清理 {len(purge_old_imports())} 个导入批次的文件和明细。")


@click.command("sync-supplier")
@click.argument("code")
@click.option("--incremental", is_flag=True, help="Only what changed since the last sync.")
def sync_supplier_command(code, incremental):
    """同步商品库 for one supplier now, in this process; prints the run's totals."""
    from kamen.models import Supplier
    from kamen.services import syncing
    from kamen.suppliers.base import SupplierError

    supplier = db.session.scalar(sa.select(Supplier).filter_by(code=code))
    if supplier is None:
        raise click.ClickException(f"没有代号为 {code} 的货源")
    try:
        run = syncing.request_sync(db.session, supplier, "incremental" if incremental else "full")
        run = syncing.run_sync(db.session, run.id)
    except syncing.SyncBusy as exc:
        raise click.ClickException(f"该货源已有同步在进行（记录 #{exc.args[0]}）") from exc
    except SupplierError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"{run.status}: 读取 {run.seen}，新增 {run.created}，变更 {run.changed}，无变化 {run.unchanged}，"
        f"下架 {run.delisted}，失败 {run.failed}，耗时 {run.duration_seconds:.1f} 秒"
    )
    if run.status != "succeeded":
        raise click.ClickException(run.message)


@click.command("dispatch-syncs")
def dispatch_syncs_command():
    """What the schedule does every minute: queue due syncs and re-check reminders."""
    from jobs.sync import dispatch_due_syncs

    click.echo(f"已排队同步：{dispatch_due_syncs() or '无'}")


@click.command("retry-demo-notifies")
def retry_demo_notifies_command():
    """What the schedule does every minute for the 易支付 demo gateway: resend due notifies."""
    from flask import current_app

    from jobs.demopay import retry_notifies

    if not current_app.config["DEMO_GATEWAY"]:
        raise click.ClickException("演示支付网关未开启（KAMEN_DEMO_GATEWAY=1 开启）。")
    if not current_app.config["REDIS_URL"]:
        current_app.config["JOBS_SYNC"] = True  # no worker: send them from this process, now
    click.echo(f"已重发到期的支付通知：{retry_notifies()} 个")


@click.command("import-products")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--supplier", "supplier_code", default=None, help="Supplier code (default: the shop's own).")
@click.option("--template", default="", help="A saved mapping template's name.")
@click.option("--mode", type=click.Choice(["upsert", "create", "update"]), default="upsert", show_default=True)
@click.option("--commit", is_flag=True, help="Commit when the preview is ready (otherwise only validate).")
@click.option("--confirm-warnings", is_flag=True, help="Commit rows with price-change warnings too.")
@click.option("--report", type=click.Path(dir_okay=False), help="Write the error rows (+错误原因) here.")
@click.option("--strict", is_flag=True, help="Exit non-zero when any row has an error.")
@click.option("--create-categories", is_flag=True,
              help="Create the categories the file names that the shop lacks (otherwise their rows fail).")
@click.option("--price-basis", type=click.Choice(["file", "markup", "cap_face", "cap_market"]), default=None,
              help="How sale prices are set (default: the supplier's setting).")
def import_products_command(path, supplier_code, template, mode, commit, confirm_warnings, report, strict,
                            create_categories, price_basis):
    """批量导入 a price list from the command line; prints a JSON summary."""
    import json
    import os

    from kamen.models import Supplier
    from kamen.services.importing import automation
    from kamen.services.importing.errors import ImportFileError
    from kamen.services.suppliers import default_supplier

    if supplier_code:
        supplier = db.session.scalar(sa.select(Supplier).filter_by(code=supplier_code))
        if supplier is None:
            raise click.ClickException(f"没有代号为 {supplier_code} 的货源")
    else:
        supplier = default_supplier(db.session)
    options = automation.AutoOptions(mode=mode, template=template, commit=commit, confirm_warnings=confirm_warnings,
                                     create_categories=create_categories, price_basis=price_basis)
    try:
        with open(path, "rb") as stream:
            batch = automation.run_import(db.session, stream, os.path.basename(path), supplier, options)
    except ImportFileError as exc:
        raise click.ClickException(str(exc)) from exc
    result = automation.summary(db.session, batch)
    if report and batch.failed:
        automation.write_report(db.session, batch, report)
        result["report"] = report
    click.echo(json.dumps(result, ensure_ascii=False, indent=2))
    if batch.status == "failed" or (strict and batch.failed):
        raise SystemExit(1)


@click.command("create-api-token")
@click.argument("name")
def create_api_token_command(name):
    """A token for scripts that upload price lists (POST /api/import/v1/products)."""
    from kamen.services.api_tokens import create_token

    _token, secret = create_token(db.session, name)
    click.echo(f"API 令牌（只显示这一次）：{secret}")


@click.command("doctor")
def doctor_command():
    """Check settings, database, Redis, migrations, worker and cron; print what to fix."""
    from flask import current_app

    from kamen.services import doctor

    failed = False
    for check in doctor.run_checks(current_app, db.session):
        mark = {"ok": "✓", "warn": "!", "fail": "✗"}[check.level]
        click.echo(f"{mark} {check.name}：{check.message}")
        if check.fix:
            click.echo(f"    → {check.fix}")
        failed = failed or check.level == "fail"
    if failed:
        raise SystemExit(1)


@click.command("create-demo-channel")
@click.option("--base-url", default=None, help="The demo gateway's address (default: KAMEN_DEMO_GATEWAY_URL).")
def create_demo_channel_command(base_url):
    """A payment channel pointing at the built-in 易支付 demo gateway (KAMEN_DEMO_GATEWAY=1)."""
    from flask import current_app

    from kamen.services.payments import ensure_demo_channel

    config = current_app.config
    if not config["DEMO_GATEWAY"]:
        raise click.ClickException("演示支付网关未开启（KAMEN_DEMO_GATEWAY=1 开启）。")
    base_url = base_url or config["DEMO_GATEWAY_URL"]
    if not base_url:
        raise click.ClickException("请用 --base-url 或 KAMEN_DEMO_GATEWAY_URL 给出演示网关的地址，例如 http://127.0.0.1:5000/demopay/")
    channel, created = ensure_demo_channel(db.session, base_url, config["DEMO_GATEWAY_PID"], config["DEMO_GATEWAY_KEY"])
    click.echo(f"{'已创建' if created else '已更新'}支付通道“{channel.name}”（编号 {channel.id}）→ {channel.base_url}")
