"""Decoding a sample's image into the 8-bit RGB picture a model sees: the one place images are opened.

:func:`load_image` opens any source a task may hold (bytes, a path, a PIL image, a ``datasets``
``{"bytes", "path"}`` struct); :func:`to_rgb` converts every PIL mode to 8-bit RGB by its value
range, where ``Image.convert("RGB")`` clips instead of scaling: a 16-bit PNG at 1000/65535
would become pure white and a float TIFF at 0.5 black. :func:`source_digest` fingerprints a
source without decoding it, and never opens what is not a regular file (a FIFO would block).

Every failure is a :class:`CorruptImageError` with one line naming the image and the fix, so a
bad image fails its sample alone.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pvm_bench.errors import TaskError

#: Largest image (width x height, pixels) a sample may have: 64 MP, e.g. 8000 x 8000. Processors
#: resize every image to a few megapixels anyway, so a bigger one only costs memory (a 13000 x
#: 13000 PNG decodes to 0.5 GB of RGB and peaks near 3 GB). Override with the environment variable
#: ``PVM_BENCH_MAX_IMAGE_PIXELS``; beyond it the sample fails alone with a per-sample error.
MAX_IMAGE_PIXELS = 64_000_000

#: Integer modes holding 16-bit samples (PIL spells the byte order in the mode).
_MODES_16 = ("I;16", "I;16L", "I;16B", "I;16N")


class CorruptImageError(TaskError):
    """An image of a sample cannot be decoded (or is too large, or its values cannot be mapped to 8 bits)."""


def max_image_pixels() -> int:
    value = os.environ.get("PVM_BENCH_MAX_IMAGE_PIXELS", "")
    return int(value) if value.strip().isdigit() else MAX_IMAGE_PIXELS


def _raw(source: Any) -> Any:
    """The bytes or path inside a ``datasets`` image struct (other sources unchanged)."""
    if isinstance(source, dict):
        return source.get("bytes") or source.get("path")
    return source


def _regular_file(path: str | Path, name: str) -> Path:
    """``path`` after checking, without opening it, that it is an existing regular file."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise CorruptImageError(
            f"{name}: cannot read image file {path} ({exc.strerror}); fix the path in the data"
        ) from None
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file (a pipe or device)"
        raise CorruptImageError(f"{name}: image path {path} is {kind}, not an image file; fix the path in the data")
    return Path(path)


def load_image(source: Any, name: str = "image") -> Image.Image:
    """The decoded 8-bit RGB image of ``source`` (see module doc); :class:`CorruptImageError` when it
    cannot be decoded, is larger than :func:`max_image_pixels` (checked from the header, before
    decoding) or has values :func:`to_rgb` refuses."""
    src = _raw(source)
    try:
        if isinstance(src, Image.Image):
            img = src
            check_size(img, name)
        else:
            if src is None or src == b"" or src == "":
                raise CorruptImageError(f"{name}: the image is empty (no bytes and no path)")
            with warnings.catch_warnings():  # our own limit below replaces PIL's bomb warning
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                if isinstance(src, (bytes, bytearray)):
                    img = Image.open(io.BytesIO(src))
                elif isinstance(src, (str, Path)):
                    img = Image.open(_regular_file(src, name))
                else:
                    raise TypeError(f"unsupported image source type {type(src).__name__}")
            check_size(img, name)
            img.load()
        return to_rgb(img, name)
    except Image.DecompressionBombError as exc:
        raise CorruptImageError(f"{name}: image too large to decode safely ({exc}); downscale it") from exc
    except CorruptImageError:
        raise
    except Exception as exc:  # PIL raises many types for bad data
        raise CorruptImageError(f"{name}: cannot decode image ({type(exc).__name__}: {exc})") from exc


def check_size(img: Image.Image, name: str) -> None:
    width, height = img.size
    limit = max_image_pixels()
    if width * height > limit:
        raise CorruptImageError(
            f"{name}: image is {width}x{height} = {width * height / 1e6:.1f} MP, over the "
            f"{limit / 1e6:.0f} MP limit per image; downscale it (processors resize to a few MP anyway) "
            "or raise PVM_BENCH_MAX_IMAGE_PIXELS"
        )


def to_rgb(img: Image.Image, name: str = "image") -> Image.Image:
    """``img`` as 8-bit RGB, scaling high-bit-depth modes by their value range.

    * ``I;16*`` (16-bit PNG/TIFF): value / 257 (65535 -> 255), rounded;
    * ``I`` (32-bit integer; older Pillow opens 16-bit PNGs so): read as 16-bit, values outside
      0..65535 are refused;
    * ``F`` (32-bit float, e.g. a float TIFF): the usual [0, 1] convention, value x 255; values
      outside [0, 1] or not finite are refused (their scale is unknown);
    * every other mode (``1``, ``L``, ``P``, ``RGBA``, ``CMYK``, ``YCbCr``...): PIL's own conversion,
      which is exact for 8-bit modes (alpha is dropped, as ``convert`` does).
    """
    mode = img.mode  # RGB too goes through convert: a copy, still valid after the caller closes its file
    if mode in _MODES_16 or mode == "I":
        values = np.asarray(img).astype(np.int64)
        if mode == "I" and values.size and (values.min() < 0 or values.max() > 65535):
            raise CorruptImageError(
                f"{name}: 32-bit integer image with values {values.min()}..{values.max()}, outside 16 bits; "
                "save it as 8- or 16-bit"
            )
        return Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8), "L").convert("RGB")
    if mode == "F":
        values = np.asarray(img, dtype=np.float64)
        if values.size and (not np.isfinite(values).all() or values.min() < 0.0 or values.max() > 1.0):
            finite = values[np.isfinite(values)]
            shown = f"{finite.min():g}..{finite.max():g}" if finite.size else "none finite"
            raise CorruptImageError(
                f"{name}: float image with values {shown}{'' if np.isfinite(values).all() else ' and NaN/inf'}, "
                "outside the [0, 1] range float images are read in; rescale it to [0, 1] or save it as 8-bit"
            )
        return Image.fromarray(np.rint(values * 255.0).astype(np.uint8), "L").convert("RGB")
    return img.convert("RGB")


def source_bytes(source: Any) -> bytes:
    """Bytes identifying an image source for a data fingerprint, without decoding it: the encoded
    bytes, a regular file's content, a PIL image's pixels, else the source's repr. A path that is
    not a regular file (directory, FIFO, device) is never opened (a FIFO would block): its marker
    names it, and the sample's own :func:`load_image` reports the problem."""
    src = _raw(source)
    if isinstance(src, (bytes, bytearray)):
        return bytes(src)
    if isinstance(src, (str, Path)):
        try:
            mode = os.stat(src).st_mode
        except OSError:
            return repr(src).encode()
        if not stat.S_ISREG(mode):
            return f"<not a regular file: {src}>".encode()
        try:
            return Path(src).read_bytes()
        except OSError as exc:  # unreadable (permissions): the sample's load reports it
            return f"<unreadable: {src}: {exc.strerror}>".encode()
    if isinstance(src, Image.Image):
        return src.tobytes()
    return repr(src).encode()
