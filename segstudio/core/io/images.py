"""Image reading: every layout a segmentation dataset ships, as numpy arrays in RGB order.

Decoding goes through OpenCV (fast, keeps 16-bit and alpha) with Pillow as the header reader and the
fallback decoder. The header is always read first so that the pixel limit is enforced before any
large allocation, and so that EXIF orientation can be applied uniformly (OpenCV ignores it when asked
for the unchanged layout).
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from os import PathLike

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from segstudio.core.errors import ImageReadError, ImageTooLargeError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "set_max_pixels",
    "get_max_pixels",
    "read_image",
    "image_size",
    "to_three_channels",
    "to_display_rgb",
    "to_model_rgb",
]

DEFAULT_MAX_PIXELS = 1_000_000_000
_max_pixels = DEFAULT_MAX_PIXELS

# Pillow's own bomb guard (Image.MAX_IMAGE_PIXELS) fires inside Image.open with a message that does
# not name our limit; we switch it off around our header reads, under a lock so that concurrent
# readers restore the right value, and enforce our own limit instead.
_PIL_GUARD_LOCK = threading.Lock()

# EXIF orientation tag value -> function turning the stored array into the displayed one; the same
# transforms Pillow's ImageOps.exif_transpose applies.
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1, :],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}
_EXIF_ORIENTATION = 0x0112
_ORIENTED_FORMATS = {"JPEG", "MPO", "TIFF", "WEBP"}


def set_max_pixels(n: int) -> None:
    """Set the process-wide pixel limit (width x height) used when ``max_pixels`` is not given."""
    global _max_pixels
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"max pixels must be a positive integer, got {n!r}")
    _max_pixels = int(n)


def get_max_pixels() -> int:
    """The current process-wide pixel limit."""
    return _max_pixels


@dataclass(frozen=True)
class _Header:
    width: int          # as stored in the file, before orientation
    height: int
    format: str
    orientation: int    # EXIF orientation, 1 when absent or not applicable
    has_alpha: bool

    @property
    def display_size(self) -> tuple[int, int]:
        # Orientations 5-8 swap the axes.
        if self.orientation in (5, 6, 7, 8):
            return self.height, self.width
        return self.width, self.height


def _pil_open(path) -> Image.Image:
    """``Image.open`` (lazy: header only) without Pillow's own bomb check; callers apply ours."""
    with _PIL_GUARD_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _check_file(path) -> None:
    """Raise ImageReadError for the cases that should not reach a decoder."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ImageReadError(path, "file not found") from None
    except OSError as exc:
        raise ImageReadError(path, f"cannot access file: {exc.strerror or exc}") from None
    if os.path.isdir(path):
        raise ImageReadError(path, "is a folder, not an image file")
    if st.st_size == 0:
        raise ImageReadError(path, "empty file (0 bytes)")


def _read_header(path) -> _Header:
    """Size, format and EXIF orientation from the file header, without decoding pixels."""
    _check_file(path)
    try:
        im = _pil_open(path)
        with im:
            width, height = im.size
            fmt = im.format or ""
            has_alpha = im.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in im.info
            orientation = 1
            if fmt in _ORIENTED_FORMATS:
                try:
                    orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1))
                except Exception:  # a broken EXIF block should not make the pixels unreadable
                    orientation = 1
            if fmt == "TIFF":
                # Pillow pre-swaps im.size for some oriented TIFF layouts and not others; the tags
                # hold the stored size unambiguously.
                width = int(im.tag_v2.get(256, width))
                height = int(im.tag_v2.get(257, height))
    except UnidentifiedImageError:
        raise ImageReadError(path, "not a recognised image format (PNG, JPEG, TIFF, BMP ...)") from None
    except PermissionError:
        raise ImageReadError(path, "permission denied") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(path, f"corrupt image header: {exc}") from None
    if orientation not in _ORIENT:
        orientation = 1
    return _Header(width, height, fmt, orientation, has_alpha)


def _check_limit(path, header: _Header, max_pixels: int | None) -> None:
    limit = _max_pixels if max_pixels is None else int(max_pixels)
    pixels = header.width * header.height
    if pixels > limit:
        raise ImageTooLargeError(
            path, f"image is {header.width} x {header.height} = {pixels:,} pixels, over the limit of "
                  f"{limit:,} pixels (raise it with set_max_pixels or --max-pixels if the file is trusted)")


def image_size(path: str | PathLike) -> tuple[int, int]:
    """Displayed ``(width, height)`` of an image, read from its header only.

    EXIF orientation is taken into account, so the result matches ``read_image(path).shape[1::-1]``.

    Raises
    ------
    ImageReadError
        Missing, empty or unrecognised file.
    """
    return _read_header(path).display_size


def read_image(path: str | PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file into a numpy array.

    Parameters
    ----------
    path : str or PathLike
        PNG, JPEG, TIFF, BMP (anything Pillow recognises and OpenCV or Pillow decodes). Non-ASCII
        paths are fine.
    max_pixels : int, optional
        Pixel limit for this call; defaults to ``get_max_pixels()``. Checked from the header before
        any pixel is decoded.

    Returns
    -------
    numpy.ndarray
        ``HxW`` (gray), ``HxWx3`` (RGB) or ``HxWx4`` (RGBA); uint8 or uint16 (kept raw, never
        rescaled). EXIF orientation is applied.

    Raises
    ------
    ImageTooLargeError
        The header declares more pixels than the limit.
    ImageReadError
        Missing, empty, truncated, corrupt or unsupported file; the message names the file and why.
    """
    header = _read_header(path)
    _check_limit(path, header, max_pixels)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise ImageReadError(path, f"cannot read file: {exc.strerror or exc}") from None
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if header.format == "TIFF":
        img = _decode_tiff(path, header, img)
    else:
        img = _decode_with_pillow(path, header) if img is None else _bgr_to_rgb(img)
        if header.orientation != 1:
            # OpenCV ignores EXIF orientation in IMREAD_UNCHANGED mode (the only mode that keeps
            # 16-bit and alpha), so it is applied here, the same way for every decoder.
            img = np.ascontiguousarray(_ORIENT[header.orientation](img))
    width, height = header.display_size
    if img.shape[1] != width or img.shape[0] != height:
        # Multi-page or odd files where the decoders disagree with the header; the header is what we
        # checked against the limit, so trust only an image of that size.
        raise ImageReadError(path, f"decoded size {img.shape[1]} x {img.shape[0]} does not match "
                                   f"the header's {width} x {height}")
    return _normalise_layout(path, img)


def _decode_tiff(path, header: _Header, img: np.ndarray | None) -> np.ndarray:
    """TIFF specifics: libtiff (inside OpenCV) applies the orientation tag itself, but its RGBA
    reader premultiplies 8-bit alpha."""
    if img is None:
        return _decode_with_pillow(path, header)
    img = _bgr_to_rgb(img)
    if header.has_alpha and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 4:
        if header.orientation == 1:
            # Pillow keeps straight alpha exactly; its oriented-TIFF handling is unreliable, hence
            # only for unrotated files.
            return _decode_with_pillow(path, header)
        return _unpremultiply(img)
    return img


def _unpremultiply(rgba: np.ndarray) -> np.ndarray:
    """Undo alpha premultiplication (exact to about 255 / (2 * alpha) levels)."""
    alpha = rgba[:, :, 3:4].astype(np.float32)
    rgb = rgba[:, :, :3].astype(np.float32)
    safe = np.where(alpha > 0, alpha, 1.0)
    straight = np.where(alpha > 0, np.clip(np.rint(rgb * 255.0 / safe), 0, 255), rgb)
    return np.dstack([straight.astype(np.uint8), rgba[:, :, 3]])


def _bgr_to_rgb(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3 and img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return img


def _decode_with_pillow(path, header: _Header) -> np.ndarray:
    """Fallback for files OpenCV refuses; also tells truncated files from unsupported ones."""
    try:
        im = _pil_open(path)
        with im:
            im.load()
            mode = im.mode
            if mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
                im = im.convert("L" if mode == "1" else "RGB")
            elif mode in ("LA", "PA", "La", "RGBa"):
                im = im.convert("RGBA")
            elif mode.startswith("I;16"):
                return np.asarray(im).astype(np.uint16)
            arr = np.asarray(im)
    except (OSError, SyntaxError, ValueError) as exc:
        reason = str(exc)
        if "truncated" in reason or "broken data stream" in reason:
            raise ImageReadError(path, "truncated image data (the file is incomplete)") from None
        raise ImageReadError(path, f"cannot decode {header.format or 'image'} data: {reason}") from None
    return arr


def _normalise_layout(path, img: np.ndarray) -> np.ndarray:
    if img.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(path, f"unsupported sample type {img.dtype} (only 8- and 16-bit images)")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3 and img.shape[2] == 2:
        # gray + alpha: expand so callers only meet the documented 1, 3 and 4 channel layouts
        gray, alpha = img[:, :, 0], img[:, :, 1]
        img = np.dstack([gray, gray, gray, alpha])
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
        raise ImageReadError(path, f"unsupported image layout {img.shape}")
    return img


def to_three_channels(img: np.ndarray) -> np.ndarray:
    """HxW, HxWx1, HxWx3 or HxWx4 -> HxWx3 in the same dtype (gray replicated, alpha dropped).

    Raises
    ------
    ValueError
        Any other shape.
    """
    img = np.asarray(img)
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim == 3 and img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)
    if img.ndim == 3 and img.shape[2] in (3, 4):
        return img[:, :, :3]
    raise ValueError(f"expected an HxW, HxWx3 or HxWx4 image, got shape {img.shape}")


def _stretch_bounds(values: np.ndarray, low_pct: float, high_pct: float) -> tuple[float, float]:
    """Percentile bounds with numpy's 'inverted_cdf' definition, via a histogram for 16-bit data."""
    if values.dtype == np.uint16:
        # O(n) instead of the O(n log n) partition np.percentile needs on large microscopy images.
        counts = np.bincount(values.ravel(), minlength=65536)
        cdf = np.cumsum(counts)
        n = cdf[-1]
        lo = int(np.searchsorted(cdf, n * low_pct / 100.0, side="left"))
        hi = int(np.searchsorted(cdf, n * high_pct / 100.0, side="left"))
        return float(lo), float(hi)
    lo, hi = np.percentile(values, [low_pct, high_pct], method="inverted_cdf")
    return float(lo), float(hi)


def to_display_rgb(img: np.ndarray, low_pct: float = 0.5, high_pct: float = 99.5) -> np.ndarray:
    """An ``HxWx3`` uint8 RGB version of ``img`` for the screen.

    Parameters
    ----------
    img : numpy.ndarray
        Output of ``read_image`` (gray, RGB or RGBA; uint8 or uint16) or any numeric array of those
        shapes.
    low_pct, high_pct : float
        Percentiles mapped to 0 and 255 when the image is not uint8 (numpy's 'inverted_cdf').

    Returns
    -------
    numpy.ndarray
        uint8 images are passed through (gray replicated, alpha dropped); others are contrast
        stretched linearly between the two percentiles and clipped.
    """
    rgb = to_three_channels(img)
    if rgb.dtype == np.uint8:
        return np.ascontiguousarray(rgb)
    lo, hi = _stretch_bounds(rgb, low_pct, high_pct)
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    if rgb.dtype == np.uint16:
        levels = np.arange(65536, dtype=np.float64)
        lut = np.clip(np.rint((levels - lo) * scale), 0, 255).astype(np.uint8)
        return lut[rgb]
    out = np.clip(np.rint((rgb.astype(np.float64) - lo) * scale), 0, 255)
    return out.astype(np.uint8)


def to_model_rgb(img: np.ndarray) -> np.ndarray:
    """An ``HxWx3`` float32 RGB image in 0-1 for a model's input pipeline.

    uint8 is divided by 255, uint16 by 65535 (its dtype maximum, not the image's), floats are taken as
    already in 0-1. Gray is replicated to three channels; alpha is dropped.
    """
    rgb = to_three_channels(img)
    if rgb.dtype == np.uint8:
        return rgb.astype(np.float32) / np.float32(255.0)
    if rgb.dtype == np.uint16:
        return rgb.astype(np.float32) / np.float32(65535.0)
    if np.issubdtype(rgb.dtype, np.floating):
        return rgb.astype(np.float32, copy=True)
    raise ValueError(f"unsupported image dtype {rgb.dtype}; expected uint8, uint16 or float")
