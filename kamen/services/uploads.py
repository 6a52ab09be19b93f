"""Uploaded files stored in the database in 1 MiB chunks: save, open as a local file, delete.

Web processes and workers may run on different machines with their own
instance folders; the database is the one thing they share. Readers need a
real file (calamine opens a path), so ``local_copy`` streams the chunks into
a temporary file for the length of a ``with`` block.
"""
import os
import tempfile
from contextlib import contextmanager

import sqlalchemy as sa

from kamen import secretbox
from kamen.models import Upload, UploadChunk

CHUNK_BYTES = 1 << 20


class UploadTooLarge(ValueError):
    """str() is the Chinese message; nothing was kept."""


class UploadGone(LookupError):
    """The file was deleted (housekeeping) or never saved; str() is the Chinese message."""


def save(session, stream, *, purpose, filename="", max_bytes, encrypt=False):
    """Store ``stream`` (read piece by piece) in the caller's transaction; returns the Upload.

    ``encrypt`` seals each chunk (files holding secrets). Raises UploadTooLarge
    past ``max_bytes``: the caller rolls back.
    """
    upload = Upload(purpose=purpose, filename=os.path.basename(filename or "upload")[:255], size=0,
                    encrypted=encrypt)
    session.add(upload)
    session.flush()
    seq = 0
    while chunk := stream.read(CHUNK_BYTES):
        upload.size += len(chunk)
        if upload.size > max_bytes:
            raise UploadTooLarge(f"文件太大，上限 {max_bytes / (1 << 20):.0f} MB，请拆分后分批导入")
        data = secretbox.seal(chunk) if encrypt else chunk
        session.execute(sa.insert(UploadChunk), {"upload_id": upload.id, "seq": seq, "data": data})
        seq += 1
    return upload


@contextmanager
def local_copy(session, upload_id):
    """The upload as a temporary file path, removed when the block ends."""
    upload = session.get(Upload, upload_id) if upload_id is not None else None
    if upload is None:
        raise UploadGone("上传的文件已不存在（可能已按保留天数清理），请重新上传")
    fd, path = tempfile.mkstemp(prefix="kamen-upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            chunks = sa.select(UploadChunk.data).where(UploadChunk.upload_id == upload_id).order_by(UploadChunk.seq)
            for data in session.scalars(chunks.execution_options(yield_per=4)):
                out.write(secretbox.unseal(data) if upload.encrypted else data)
        yield path
    finally:
        os.remove(path)


def delete(session, upload_id):
    """Remove an upload and its chunks (in the caller's transaction)."""
    session.execute(sa.delete(UploadChunk).where(UploadChunk.upload_id == upload_id))
    session.execute(sa.delete(Upload).where(Upload.id == upload_id))
