"""Pictures the shop shows (product images, the logo): checked, resized, stored like any upload.

An uploaded file is only trusted after Pillow has decoded it: the type is
read from the bytes, not the name; the pixel count is checked from the header
before anything is decoded (a small file can claim a gigapixel image); and
what is kept is our own re-encoding at a sane size, never the original bytes.
"""
import io
import warnings

import sqlalchemy as sa
from PIL import Image, ImageOps, UnidentifiedImageError

from kamen.models import Upload, UploadChunk
from kamen.services import uploads

MAX_BYTES = 5 << 20
MAX_PIXELS = 40_000_000  # 8000 × 5000: a photo from any phone, not a decompression bomb
FORMATS = {"JPEG": "JPG", "PNG": "PNG", "WEBP": "WebP", "GIF": "GIF"}
PRODUCT_BOX = (800, 800)
LOGO_BOX = (480, 160)
PURPOSES = {"product_image": PRODUCT_BOX, "logo": LOGO_BOX}
MIMETYPE = "image/webp"


class ImageInvalid(ValueError):
    """str() is the Chinese message for the admin; nothing was kept."""


def _decode(data):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in FORMATS:
                raise ImageInvalid(f"图片格式不支持，请上传 {' / '.join(FORMATS.values())} 图片")
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageInvalid(f"图片尺寸过大（{width}×{height}），请缩小到 4000×4000 像素以内再上传")
            image.load()
    except ImageInvalid:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageInvalid("图片尺寸过大，请缩小到 4000×4000 像素以内再上传") from None
    except UnidentifiedImageError:
        raise ImageInvalid("文件不是有效的图片，请上传 JPG / PNG / WebP / GIF 图片") from None
    except (OSError, SyntaxError, ValueError):
        raise ImageInvalid("图片文件已损坏或不完整，请重新导出后上传") from None
    return image


def prepare(data, box):
    """The picture re-encoded as WebP, fitted inside ``box``; ImageInvalid when it is not one."""
    if not data:
        raise ImageInvalid("请选择要上传的图片")
    if len(data) > MAX_BYTES:
        raise ImageInvalid(f"图片太大，上限 {MAX_BYTES >> 20} MB")
    image = _decode(data)
    image = ImageOps.exif_transpose(image)  # phone photos stand the right way up
    image = image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB")
    image.thumbnail(box)
    out = io.BytesIO()
    image.save(out, "WEBP", quality=85)
    return out.getvalue()


def save(session, stream, purpose, filename=""):
    """Check and store an uploaded picture in the caller's transaction; returns the Upload."""
    data = stream.read(MAX_BYTES + 1)
    encoded = prepare(data, PURPOSES[purpose])
    return uploads.save(session, io.BytesIO(encoded), purpose=purpose, filename=filename, max_bytes=MAX_BYTES)


def read(session, upload_id):
    """A stored picture's bytes, or None: only pictures are served, never price lists or card codes."""
    purpose = session.scalar(sa.select(Upload.purpose).where(Upload.id == upload_id))
    if purpose not in PURPOSES:
        return None
    chunks = session.scalars(
        sa.select(UploadChunk.data).where(UploadChunk.upload_id == upload_id).order_by(UploadChunk.seq)
    )
    return b"".join(chunks)
