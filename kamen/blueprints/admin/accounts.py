"""Admin accounts: your own password, and the other admins (add, deactivate)."""
import sqlalchemy as sa
from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user

from kamen.blueprints.admin import bp
from kamen.blueprints.admin.auth import login_limits
from kamen.blueprints.admin.forms import AddAdminForm, ChangePasswordForm
from kamen.extensions import db
from kamen.models import AdminUser
from kamen.services import auth


@bp.route("/account", methods=["GET", "POST"])
def account():
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            auth.change_password(db.session, current_user, form.current_password.data, form.new_password.data,
                                 request.remote_addr or "-", **login_limits())
        except auth.AccountInvalid as exc:
            form[exc.field or "new_password"].errors.append(str(exc))
        else:
            # This browser stays logged in under the new session version; every other one is logged out.
            remembered = current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token") in request.cookies
            login_user(current_user._get_current_object(), remember=remembered)
            flash("密码已修改，其他设备上的登录已全部退出。", "success")
            return redirect(url_for("admin.account"))
    return render_template("admin/account.html", form=form), 400 if form.errors else 200


@bp.route("/admins", methods=["GET", "POST"])
def admins():
    form = AddAdminForm()
    if form.validate_on_submit():
        try:
            user, password = auth.add_admin(db.session, form.username.data)
        except auth.AccountInvalid as exc:
            form.username.errors.append(str(exc))
        else:
            flash(f"管理员“{user.username}”已添加，请把下面的一次性密码交给对方，登录后请尽快修改。", "success")
            return _admins_page(AddAdminForm(formdata=None), password)
    return _admins_page(form)


@bp.post("/admins/<int:user_id>/reset")
def admin_reset(user_id):
    try:
        user, password = auth.reset_password(db.session, current_user, user_id)
    except auth.AccountInvalid as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.admins"))
    flash(f"“{user.username}”的密码已重置，其所有登录已退出。请把下面的一次性密码交给对方。", "success")
    return _admins_page(AddAdminForm(formdata=None), password)


def _admins_page(form, new_password=None):
    users = db.session.scalars(sa.select(AdminUser).order_by(AdminUser.id)).all()
    return render_template("admin/admins.html", form=form, users=users, new_password=new_password), (
        400 if form.errors else 200
    )


@bp.post("/admins/<int:user_id>/active")
def admin_active(user_id):
    active = request.form.get("active") == "1"
    try:
        changed = auth.set_active(db.session, current_user, user_id, active)
    except auth.AccountInvalid as exc:
        flash(str(exc), "error")
    else:
        if changed:
            flash("账号已启用。" if active else "账号已停用，它的所有登录已退出。", "success")
    return redirect(url_for("admin.admins"))
