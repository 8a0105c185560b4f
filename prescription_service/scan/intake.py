"""Document intake: which bytes are let in, and the pages they become.

The type is decided by magic bytes, never a filename; sizes are checked before anything is decoded.
"""

from __future__ import annotations

import io
import threading
import warnings
from typing import Final

import pypdfium2
from PIL import Image, ImageOps

MAX_BYTES: Final = 10 * 1024 * 1024
# An A3 page at 300 dpi is 35 Mpx; a 40 Mpx phone photo fits. Decoding 40 Mpx of RGB takes ~120 MB.
MAX_PIXELS: Final = 40_000_000
MAX_PAGES: Final = 5
# All the pages of one PDF together: every page is decoded before the first is read, so this bounds a
# scan's memory (about 3 bytes a pixel) whatever its pages; five A4 pages at 300 dpi are 44 million.
MAX_DOCUMENT_PIXELS: Final = 60_000_000
PDF_DPI: Final = 300

PNG_MAGIC: Final = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC: Final = b"\xff\xd8\xff"
PDF_MAGIC: Final = b"%PDF-"

# PDFium is not thread-safe: one document at a time in a process (a worker's threads share it).
_pdfium_lock = threading.Lock()


class DocumentRefused(Exception):
    """The document is not let in: `status` is the HTTP status the gateway answers (413, 415 or 422)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


def document_type(data: bytes) -> str | None:
    """'png', 'jpeg' or 'pdf' by the document's first bytes; None for anything else."""
    if data.startswith(PNG_MAGIC):
        return "png"
    if data.startswith(JPEG_MAGIC):
        return "jpeg"
    if data.startswith(PDF_MAGIC):
        return "pdf"
    return None


def read_document(data: bytes) -> list[Image.Image]:
    """The pages of a PNG, JPEG or PDF document as decoded images, or DocumentRefused saying why not."""
    if len(data) > MAX_BYTES:
        raise DocumentRefused(413, f"the document is {len(data)} bytes; at most {MAX_BYTES} are accepted")
    if not data:
        raise DocumentRefused(422, "the document is empty")
    kind = document_type(data)
    if kind is None:
        raise DocumentRefused(415, "the document is not a PNG, JPEG or PDF")
    if kind == "pdf":
        return _pdf_pages(data)
    return [_image(data, kind)]


def _too_many_pixels(width: int, height: int) -> DocumentRefused:
    return DocumentRefused(413, f"a page of {width}x{height} pixels is larger than {MAX_PIXELS} pixels")


def _image(data: bytes, kind: str) -> Image.Image:
    with warnings.catch_warnings():
        # Pillow warns past its own limit and raises past twice it: both are a bomb to us.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            # open() reads the header only: the size is known before a pixel is decoded.
            image = Image.open(io.BytesIO(data), formats=["PNG"] if kind == "png" else ["JPEG", "MPO"])
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise _too_many_pixels(width, height)
            if width == 0 or height == 0:
                raise DocumentRefused(422, "the image has no pixels")
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as bomb:
            raise DocumentRefused(413, f"the image is too large to decode: {bomb}") from bomb
        except DocumentRefused:
            raise
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            raise DocumentRefused(422, f"the {kind.upper()} is corrupt or truncated: {error}") from error
    # A phone photo stores its rotation in EXIF; the pixels are only right once it is applied.
    upright = ImageOps.exif_transpose(image)
    return upright.convert("RGB")


def _pdf_pages(data: bytes) -> list[Image.Image]:
    scale = PDF_DPI / 72
    with _pdfium_lock:
        try:
            pdf = pypdfium2.PdfDocument(data)
        except pypdfium2.PdfiumError as error:
            raise DocumentRefused(422, f"the PDF is corrupt or encrypted: {error}") from error
        try:
            count = len(pdf)
            if count == 0:
                raise DocumentRefused(422, "the PDF has no pages")
            if count > MAX_PAGES:
                raise DocumentRefused(422, f"the PDF has {count} pages; at most {MAX_PAGES} are read")
            # Every page's size is checked before the first is rendered.
            total = 0
            for index in range(count):
                points_wide, points_high = pdf[index].get_size()
                width, height = round(points_wide * scale), round(points_high * scale)
                if width * height > MAX_PIXELS:
                    raise _too_many_pixels(width, height)
                if width <= 0 or height <= 0:
                    raise DocumentRefused(422, f"page {index + 1} of the PDF has no area")
                total += width * height
            if total > MAX_DOCUMENT_PIXELS:
                raise DocumentRefused(
                    413, f"the PDF's pages hold {total} pixels; at most {MAX_DOCUMENT_PIXELS} are read"
                )
            pages = []
            for index in range(count):
                bitmap = pdf[index].render(scale=scale, grayscale=True)
                pages.append(bitmap.to_pil().convert("RGB"))
            return pages
        except pypdfium2.PdfiumError as error:
            raise DocumentRefused(422, f"the PDF could not be rendered: {error}") from error
        finally:
            pdf.close()
