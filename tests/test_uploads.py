"""Uploads stored in the database: streamed in, read back whole, bounded, removable."""
import io
import os

import pytest
import sqlalchemy as sa

from kamen.extensions import db
from kamen.models import Upload, UploadChunk
from kamen.services import uploads


def _chunks(upload_id):
    return db.session.scalars(sa.select(UploadChunk.data).where(UploadChunk.upload_id == upload_id)
                              .order_by(UploadChunk.seq)).all()


def test_a_file_is_stored_in_chunks_and_read_back_byte_for_byte(app):
    data = os.urandom(uploads.CHUNK_BYTES * 2 + 12345)
    upload = uploads.save(db.session, io.BytesIO(data), purpose="import", filename="../../价目表.xlsx", max_bytes=10 << 20)
    db.session.commit()
    assert (upload.filename, upload.size) == ("价目表.xlsx", len(data))
    assert [len(c) for c in _chunks(upload.id)] == [uploads.CHUNK_BYTES, uploads.CHUNK_BYTES, 12345]
    with uploads.local_copy(db.session, upload.id) as path:
        with open(path, "rb") as f:
            assert f.read() == data
    assert not os.path.exists(path)


def test_too_large_keeps_nothing(app):
    with pytest.raises(uploads.UploadTooLarge, match="文件太大，上限 1 MB"):
        uploads.save(db.session, io.BytesIO(b"x" * ((1 << 20) + 1)), purpose="import", max_bytes=1 << 20)
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Upload)) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(UploadChunk)) == 0


def test_encrypted_upload_keeps_no_plaintext_in_the_database(app):
    secret = "卡密 ABCD-1234-SECRET\n".encode() * 100
    upload = uploads.save(db.session, io.BytesIO(secret), purpose="card_codes", max_bytes=1 << 20, encrypt=True)
    db.session.commit()
    assert b"SECRET" not in b"".join(_chunks(upload.id))
    with uploads.local_copy(db.session, upload.id) as path:
        with open(path, "rb") as f:
            assert f.read() == secret


def test_deleted_upload_is_gone_with_its_chunks(app):
    upload = uploads.save(db.session, io.BytesIO(b"a,b\n"), purpose="import", max_bytes=1 << 20)
    db.session.commit()
    uploads.delete(db.session, upload.id)
    db.session.commit()
    assert _chunks(upload.id) == []
    with pytest.raises(uploads.UploadGone, match="上传的文件已不存在"):
        with uploads.local_copy(db.session, upload.id):
            pass
