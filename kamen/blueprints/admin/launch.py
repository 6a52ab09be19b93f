"""上线测试: start a run (after an import, a sync, or on chosen goods), watch it, read its report."""
from flask import abort, flash, redirect, render_template, request, url_for

from kamen.blueprints.admin import bp
from kamen.blueprints.common import is_htmx
from kamen.extensions import db
from kamen.models import ImportBatch, LaunchRun, SyncRun
from kamen.services import launch_test, settings


@bp.get("/launch-tests")
def launch_tests():
    return render_template("admin/launch_tests.html", runs=launch_test.runs(db.session),
                           options=settings.get(db.session, launch_test.SETTINGS_KEY),
                           labels=launch_test.STATUS_LABELS)


@bp.post("/launch-tests/settings")
def launch_test_settings():
    settings.put(db.session, launch_test.SETTINGS_KEY,
                 {"keep_failed_unlisted": request.form.get("keep_failed_unlisted") == "1"})
    flash("上线测试设置已保存。", "success")
    return redirect(url_for("admin.launch_tests"))


@bp.post("/launch-tests/new")
def launch_test_new():
    form = request.form
    chosen = [i for i in form.getlist("ids") if i.isdigit()]
    allow = form.get("allow_supplier_orders") == "1"
    try:
        chosen += launch_test.ids_for_codes(db.session, form.get("extra_codes", ""))
        if form.get("batch_id", "").isdigit():
            batch = db.get_or_404(ImportBatch, int(form["batch_id"]))
            run = launch_test.start(db.session, f"导入批次 #{batch.id}（{batch.filename}）",
                                    launch_test.products_of_import(batch.id), chosen, allow)
        elif form.get("sync_run_id", "").isdigit():
            sync_run = db.get_or_404(SyncRun, int(form["sync_run_id"]))
            run = launch_test.start(db.session, f"同步 #{sync_run.id}（{sync_run.supplier.name}）",
                                    launch_test.products_of_sync(db.session, sync_run.id), chosen, allow)
        else:
            run = launch_test.start(db.session, f"手动选择 {len(chosen)} 个商品", None, chosen, allow)
    except launch_test.LaunchInvalid as exc:
        flash(str(exc), "error")
        return redirect(request.referrer or url_for("admin.launch_tests"))
    return redirect(url_for("admin.launch_test_report", test_id=run.id))


@bp.get("/launch-tests/<int:test_id>")
def launch_test_report(test_id):
    run = db.session.get(LaunchRun, test_id)
    if run is None:
        abort(404)
    template = "admin/_launch_progress.html" if is_htmx() else "admin/launch_test.html"
    return render_template(template, run=run, labels=launch_test.STATUS_LABELS,
                           check_labels=launch_test.CHECK_LABELS, active=launch_test.ACTIVE)
