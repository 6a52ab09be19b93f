"""An import batch's life: its status changes and the jobs it waits for.

    analyzing → mapping → staging → ready → (scheduled →) committing → committed → undone
                                                                  ↘ cancelled (继续提交)
    any job step → failed (重试 runs the step again; 取消 ends the batch)

Views, the API, the CLI and the schedule call these; the jobs call
:func:`run_step`. Every status change is one conditional UPDATE (or made by
the job that holds the batch's lease), so two clicks, a scheduler tick and an
API retry start a step once.
"""
import logging
from dataclasses import asdict

import sqlalchemy as sa
from flask import current_app

from kamen.models import ImportBatch
from kamen.services import background
from kamen.services.importing import automation, committing, staging
from kamen.services.importing.staging import ImportInvalid
from kamen.services.transitions import transition
from kamen.timeutil import utcnow

log = logging.getLogger("kamen.imports")

# step -> (job, the statuses the batch is in while the step's job runs)
STEPS = {
    "analyze": ("jobs.imports.analyze_import", ("analyzing",)),
    "stage": ("jobs.imports.stage_import", ("staging",)),
    "commit": ("jobs.imports.commit_import", ("committing",)),
    "auto": ("jobs.imports.process_automated_import", ("analyzing", "staging", "committing")),
}
STEP_STATUS = {"analyze": "analyzing", "stage": "staging", "commit": "committing", "auto": "analyzing"}
STEP_LABELS = {"analyze": "读取表头", "stage": "校验", "commit": "提交", "auto": "自动导入"}
IN_PROGRESS = ("analyzing", "staging", "committing")


def upload(session, stream, filename, *, supplier, category_id=None, mode="upsert", auto=None):
    """Save the file as a new batch and ask for its first job; returns (batch, queue answer).
    ``auto`` (automation.AutoOptions) runs the whole import unattended."""
    batch = staging.create_batch(session, stream, filename, supplier=supplier, category_id=category_id, mode=mode)
    batch.step = "auto" if auto is not None else "analyze"
    batch.auto_options = asdict(auto) if auto is not None else None
    session.commit()
    return batch, _request(session, batch)


def reread_header(session, batch, header_line=None, sheet=None):
    """Read the file again with the header row or sheet the admin picked."""
    values = {"header_row": header_line - 1 if header_line and header_line > 0 else None, "step": "analyze",
              "message": ""}
    if sheet:
        values["sheet"] = sheet
    if not transition(session, ImportBatch, batch.id, ("mapping", "ready", "failed"), "analyzing", **values):
        session.rollback()
        raise ImportInvalid("该批次正在处理，请稍后再试")
    session.commit()
    return _request(session, batch)


def confirm_mapping(session, batch, options):
    """Store the admin's mapping (staging.StageOptions) and validate every row in a job."""
    staging.apply_mapping(session, batch, options)
    batch.step = "stage"
    session.commit()
    return _request(session, batch)


def commit(session, batch, *, confirm_warnings=False, at=None):
    """Commit now (a job) or at ``at`` (the schedule's tick); None when scheduled."""
    if at is not None and not current_app.config["REDIS_URL"]:  # embedded mode: no schedule runs
        raise ImportInvalid("当前没有开启定时任务，不能预约提交；请直接点“立即提交”")
    committing.request_commit(session, batch, confirm_warnings=confirm_warnings, at=at)
    return None if at is not None else _request(session, batch)


def commit_due(session, now=None):
    """The schedule's minute tick: commit the batches whose quiet hour has come."""
    due = session.scalars(
        sa.select(ImportBatch.id)
        .where(ImportBatch.status == "scheduled", ImportBatch.scheduled_for <= (now or utcnow()))
    ).all()
    started = []
    for batch_id in due:
        if transition(session, ImportBatch, batch_id, "scheduled", "committing", step="commit", scheduled_for=None):
            session.commit()
            _request(session, session.get(ImportBatch, batch_id))
            started.append(batch_id)
    return started


def cancel(session, batch):
    """取消: a schedule goes back to the preview; a running commit stops after its
    chunk (at once when its job is dead); a failed batch ends. Returns a Chinese note."""
    if transition(session, ImportBatch, batch.id, "scheduled", "ready", scheduled_for=None):
        session.commit()
        return "已取消预约。"
    if batch.status == "committing":
        if background.is_busy(batch):
            session.execute(
                sa.update(ImportBatch).where(ImportBatch.id == batch.id, ImportBatch.status == "committing")
                .values(cancel_requested=True)
            )
            session.commit()
            return "正在取消：当前这一批写完后停止。"
        if transition(session, ImportBatch, batch.id, "committing", "cancelled", job_token=None,
                      message="已取消：已写入的部分保留，可继续提交或撤销"):
            session.commit()
            return "已取消：已写入的部分保留，可继续提交或撤销。"
    if transition(session, ImportBatch, batch.id, "failed", "cancelled", message="已取消。"):
        session.commit()
        return "已取消。"
    session.rollback()
    raise ImportInvalid("该批次当前不能取消")


def retry(session, batch):
    """重试 a step that failed for a reason other than the file (a crash, a dead worker)."""
    if batch.status != "failed" or batch.step not in STEPS:
        raise ImportInvalid("该批次不能重试，请返回列对应或重新上传")
    if not transition(session, ImportBatch, batch.id, "failed", STEP_STATUS[batch.step], message="", job_resumes=0,
                      cancel_requested=False):
        session.rollback()
        raise ImportInvalid("该批次状态已变化，请刷新页面")
    session.commit()
    return _request(session, batch)


def resume(session, batch):
    """The sweeper's call for a batch whose job died, was lost or never reached the queue."""
    return _request(session, batch)


def _request(session, batch):
    step = batch.step or {"analyzing": "analyze", "staging": "stage", "committing": "commit"}[batch.status]
    return background.request_job(session, ImportBatch, batch.id, STEPS[step][0])


def run_step(session, batch_id, step):
    """A job's work on one batch, under the batch's lease: a second job for the same
    batch (a double enqueue, a resumed job that was only slow) does nothing.
    An unexpected error marks the batch 失败 with the reason (重试 and 取消 stay
    available) and is raised again, for the job runner's log."""
    lease = background.Lease(ImportBatch, batch_id)
    if not lease.acquire(session, STEPS[step][1]):
        return session.get(ImportBatch, batch_id)
    try:
        return _STEP_WORK[step](session, batch_id, lease.beat)
    except background.LeaseLost:
        session.rollback()
        log.warning("import batch %s: another job took over the %s step; this one stops", batch_id, step)
        return session.get(ImportBatch, batch_id)
    except Exception as exc:
        _roll_back(session)
        fail(session, batch_id, f"{STEP_LABELS[step]}时发生内部错误（{type(exc).__name__}），本批次未写完的部分已回滚",
             lease.beat)
        raise
    finally:
        lease.release(session)


def _roll_back(session):
    """Roll back after a job's error; a connection the database dropped meanwhile (a
    restart, an operator's pg_terminate_backend) is discarded, so 失败 can still be written."""
    try:
        session.rollback()
    except sa.exc.DBAPIError:
        log.warning("the job's database connection was lost; it is discarded", exc_info=True)
        session.close()


def fail(session, batch_id, reason, beat=staging.no_beat):
    """Mark an unfinished batch 失败 with ``reason``; 重试 runs its step again."""
    try:
        beat(session)
    except background.LeaseLost:
        session.rollback()
        return False
    failed = transition(session, ImportBatch, batch_id, IN_PROGRESS, "failed",
                        message=f"{reason}。可点“重试”继续（已写入的部分不会重复写入），或点“取消”。")
    session.commit()
    return failed


def _auto(session, batch_id, beat):
    batch = session.get(ImportBatch, batch_id)
    if batch.status == "committing":  # resumed after the commit had begun
        return committing.commit_batch(session, batch_id, beat)
    return automation.process(session, batch_id, automation.AutoOptions(**(batch.auto_options or {})), beat)


_STEP_WORK = {
    "analyze": staging.analyze_step,
    "stage": staging.stage,
    "commit": committing.commit_batch,
    "auto": _auto,
}
