"""Reading and writing picture files: PNG, JPEG and WebP in, PNG (or WebP/JPEG) out.

8-bit pictures go through Pillow. 16-bit PNGs go through PyAV's PNG codec, because Pillow
reads 48- and 64-bit RGB(A) PNGs as 8-bit.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image, UnidentifiedImageError

from remaster.core.errors import UsageError
from remaster.core.limits import check_pixels
from remaster.core.outputs import atomic_output

INPUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
OUTPUT_FORMATS = {".png": "PNG", ".webp": "WEBP", ".jpg": "JPEG", ".jpeg": "JPEG"}
_PNG_16BIT = {"rgb48be": "rgb48le", "rgba64be": "rgba64le", "gray16be": "rgb48le", "ya16be": "rgba64le"}


def _read_png16(path: Path) -> np.ndarray | None:
    """A 16-bit PNG as H x W x 3|4 uint16; None if the PNG is 8-bit."""
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        target = _PNG_16BIT.get(frame.format.name)
        return None if target is None else frame.to_ndarray(format=target)


def read_image(path: Path, max_pixels: int | None = None) -> np.ndarray:
    """H x W x 3 (or 4 with alpha), uint8 or uint16. UsageError naming the file otherwise.

    A picture larger than `max_pixels` (None: remaster.core.limits.max_pixels()) is refused from its
    header, before anything is decoded: Image.open reads only the header.
    """
    try:
        with Image.open(path) as img:
            check_pixels(path, *img.size, max_pixels)
            img.load()
            if img.format == "PNG" and _is_png16(path):
                deep = _read_png16(path)
                if deep is not None:
                    return deep
            has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
            return np.asarray(img.convert("RGBA" if has_alpha else "RGB"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a folder") from None
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        OSError,
        av.FFmpegError,
        StopIteration,
        ValueError,
    ) as exc:
        reason = "not a picture Pillow can read" if isinstance(exc, UnidentifiedImageError) else str(exc)
        raise UsageError(f"{path}: cannot read picture ({reason})") from None


def _is_png16(path: Path) -> bool:
    # IHDR bit depth: byte 24 of a PNG (8-byte signature, 4 length, 4 type, 4 width, 4 height).
    with open(path, "rb") as f:
        head = f.read(25)
    return len(head) == 25 and head[24] == 16


def write_image(path: Path, pixels: np.ndarray) -> None:
    """Write atomically: a temporary file beside `path`, renamed when complete (outputs.atomic_output)."""
    fmt = OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(f"{path}: unsupported output type; use {', '.join(OUTPUT_FORMATS)}")
    with atomic_output(path, suffix=path.suffix) as tmp:
        if pixels.dtype == np.uint16 and fmt == "PNG":
            _write_png16(tmp, pixels)
        else:
            if pixels.dtype == np.uint16:  # WebP and JPEG are 8-bit formats
                pixels = ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
            img = Image.fromarray(pixels)
            img.save(tmp, format=fmt, **({"quality": 95} if fmt != "PNG" else {}))


def _write_png16(path: Path, pixels: np.ndarray) -> None:
    fmt = "rgba64le" if pixels.shape[-1] == 4 else "rgb48le"
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format=fmt)
    with av.open(str(path), "w", format="image2") as container:
        stream = container.add_stream("png")
        stream.width, stream.height = frame.width, frame.height
        stream.pix_fmt = "rgba64be" if fmt == "rgba64le" else "rgb48be"
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():  # flush: the encoder may hold the frame back
            container.mux(packet)
