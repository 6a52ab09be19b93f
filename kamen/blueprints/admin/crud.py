"""The create/edit round trip that simple back-office lists share."""
from flask import flash, redirect, url_for

from kamen.extensions import db


def save_or_show(save, render, errors, done, back):
    """``save()``; on one of ``errors`` show the form again (400) with the reason,
    else flash ``done`` (a str, or a callable taking what save returned) and go ``back``."""
    try:
        saved = save()
    except errors as exc:
        db.session.rollback()
        return render(error=str(exc), status=400)
    flash(done(saved) if callable(done) else done, "success")
    return redirect(url_for(back))


def delete_then_back(delete, errors, done, back):
    """``delete()``; flash the reason when it refuses with one of ``errors``, else
    ``done(what delete returned)``; go ``back`` either way."""
    try:
        deleted = delete()
    except errors as exc:
        flash(str(exc), "error")
    else:
        flash(done(deleted), "success")
    return redirect(url_for(back))
