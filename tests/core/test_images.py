import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from segstudio.core.io import images
from segstudio.core.errors import ImageReadError, ImageTooLargeError
from segstudio.core.io.images import (
    DEFAULT_MAX_PIXELS,
    get_max_pixels,
    image_size,
    read_image,
    set_max_pixels,
    to_display_rgb,
    to_model_rgb,
)


@pytest.fixture(autouse=True)
def restore_limit():
    yield
    set_max_pixels(DEFAULT_MAX_PIXELS)


def rng_image(shape, dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, np.iinfo(dtype).max, size=shape, dtype=dtype, endpoint=True)


def blocky(h, w):
    """Flat 8x8-aligned blocks of distinct colours, so JPEG reproduces them almost exactly."""
    ys, xs = np.mgrid[0:h, 0:w]
    return np.dstack([(ys // 16 * 60) % 256, (xs // 16 * 90) % 256, ((ys + xs) // 16 * 40) % 256]
                     ).astype(np.uint8)


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width, height, bit_depth=8, colour_type=2):
    """A PNG whose IHDR claims a size but which carries no pixel data at all."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b"")


@pytest.mark.parametrize("shape, mode", [((7, 5), "L"), ((7, 5, 3), "RGB"), ((7, 5, 4), "RGBA")])
@pytest.mark.parametrize("fmt, suffix", [("PNG", ".png"), ("TIFF", ".tif"), ("BMP", ".bmp")])
def test_lossless_round_trip_8bit(tmp_path, shape, mode, fmt, suffix):
    if fmt == "BMP" and mode == "RGBA":
        pytest.skip("BMP has no standard alpha")
    arr = rng_image(shape)
    path = tmp_path / f"img{suffix}"
    Image.fromarray(arr, mode).save(path, fmt)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == shape
    np.testing.assert_array_equal(out, arr)
    assert image_size(path) == (5, 7)


def test_channel_order_is_rgb(tmp_path):
    arr = np.zeros((2, 3, 3), np.uint8)
    arr[0, 0] = (255, 0, 0)
    arr[1, 2] = (0, 0, 255)
    path = tmp_path / "red.png"
    Image.fromarray(arr).save(path)
    out = read_image(path)
    assert tuple(out[0, 0]) == (255, 0, 0) and tuple(out[1, 2]) == (0, 0, 255)


def test_16bit_gray_png_and_tiff_kept_raw(tmp_path):
    arr = rng_image((9, 11), np.uint16, seed=1)
    for name in ("g16.png", "g16.tif"):
        path = tmp_path / name
        Image.fromarray(arr).save(path)
        out = read_image(path)
        assert out.dtype == np.uint16
        np.testing.assert_array_equal(out, arr)


def test_16bit_rgb_png_kept_raw_in_rgb_order(tmp_path):
    arr = rng_image((6, 4, 3), np.uint16, seed=2)
    ok, buf = cv2.imencode(".png", arr[:, :, ::-1])  # cv2 stores what it is given as BGR
    assert ok
    path = tmp_path / "rgb16.png"
    path.write_bytes(buf.tobytes())
    out = read_image(path)
    assert out.dtype == np.uint16 and out.shape == (6, 4, 3)
    np.testing.assert_array_equal(out, arr)


def test_palette_png_is_expanded_to_rgb(tmp_path):
    idx = np.array([[0, 1], [2, 1]], np.uint8)
    im = Image.fromarray(idx, "P")
    im.putpalette([0, 0, 0, 10, 20, 30, 200, 100, 50] + [0] * (256 * 3 - 9))
    path = tmp_path / "pal.png"
    im.save(path)
    out = read_image(path)
    expected = np.array([[[0, 0, 0], [10, 20, 30]], [[200, 100, 50], [10, 20, 30]]], np.uint8)
    np.testing.assert_array_equal(out, expected)


def test_jpeg_close_to_pillow_decode(tmp_path):
    arr = blocky(48, 64)
    path = tmp_path / "photo.jpg"
    Image.fromarray(arr).save(path, quality=95)
    out = read_image(path)
    ref = np.asarray(Image.open(path).convert("RGB"))
    assert out.shape == (48, 64, 3)
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 3


def oriented_reference(arr, orientation):
    """Pillow's exif_transpose on an in-memory image: the displayed array for an EXIF orientation."""
    im = Image.fromarray(arr)
    im.getexif()[0x0112] = orientation
    return np.asarray(ImageOps.exif_transpose(im))


def test_oriented_reference_agrees_with_the_exif_spec():
    a = np.arange(15, dtype=np.uint8).reshape(3, 5)
    rot_cw = np.array([[a[2 - c, r] for c in range(3)] for r in range(5)])  # orientation 6
    np.testing.assert_array_equal(oriented_reference(a, 6), rot_cw)
    np.testing.assert_array_equal(oriented_reference(a, 2), a[:, ::-1])


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("shape, dtype", [((5, 8, 3), np.uint8), ((5, 8), np.uint8),
                                          ((5, 8), np.uint16)])
def test_exif_orientation_tiff(tmp_path, orientation, shape, dtype):
    arr = rng_image(shape, dtype, seed=orientation)
    path = tmp_path / f"o{orientation}.tif"
    Image.fromarray(arr).save(path, tiffinfo={274: orientation})
    expected = oriented_reference(arr, orientation)
    out = read_image(path)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, expected)
    assert image_size(path) == (expected.shape[1], expected.shape[0])
    if orientation >= 5:
        assert out.shape[:2] == (8, 5)


@pytest.mark.parametrize("orientation", [1, 3, 6])
def test_rgba_tiff_alpha_is_straight_not_premultiplied(tmp_path, orientation):
    arr = rng_image((5, 8, 4), seed=10)
    arr[:, :, 3] = np.clip(arr[:, :, 3], 128, 255)  # un-premultiplying is exact to 1 level here
    path = tmp_path / f"rgba{orientation}.tif"
    Image.fromarray(arr, "RGBA").save(path, tiffinfo={274: orientation})
    out = read_image(path)
    expected = oriented_reference(arr, orientation)
    assert out.shape == expected.shape
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= (0 if orientation == 1 else 1)


@pytest.mark.parametrize("orientation", [3, 6, 7, 8])
def test_exif_orientation_jpeg(tmp_path, orientation):
    arr = blocky(32, 48)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    Image.fromarray(arr).save(path, exif=exif, quality=95)
    stored = np.asarray(Image.open(path).convert("RGB"))  # Pillow does not rotate JPEG on load
    ref = oriented_reference(stored, orientation)
    out = read_image(path)
    assert out.shape == ref.shape
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 3
    assert image_size(path) == (ref.shape[1], ref.shape[0])


def test_non_ascii_path(tmp_path):
    folder = tmp_path / "données 图像"
    folder.mkdir()
    path = folder / "фото_ñ.png"
    arr = rng_image((4, 6, 3), seed=3)
    Image.fromarray(arr).save(path)
    np.testing.assert_array_equal(read_image(path), arr)
    np.testing.assert_array_equal(read_image(str(path)), arr)
    assert image_size(path) == (6, 4)


def test_bomb_header_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(100_000, 100_000))
    saved = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageTooLargeError) as info:
        read_image(path)
    message = str(info.value)
    assert str(path) in message
    assert "100000 x 100000" in message and "1,000,000,000" in message
    assert Image.MAX_IMAGE_PIXELS == saved
    # header-only size works even far beyond Pillow's own bomb threshold
    assert image_size(path) == (100_000, 100_000)


def test_pixel_limit_configurable(tmp_path):
    path = tmp_path / "small.png"
    Image.fromarray(rng_image((10, 10, 3))).save(path)
    with pytest.raises(ImageTooLargeError) as info:
        read_image(path, max_pixels=99)
    assert str(path) in str(info.value)
    assert read_image(path, max_pixels=100).shape == (10, 10, 3)
    set_max_pixels(50)
    assert get_max_pixels() == 50
    with pytest.raises(ImageTooLargeError, match="over the limit of 50 pixels"):
        read_image(path)
    assert read_image(path, max_pixels=1000).shape == (10, 10, 3)
    with pytest.raises(ValueError):
        set_max_pixels(0)


def test_within_our_limit_but_beyond_pillows_guard_is_not_a_bomb_error(tmp_path):
    # 13500 x 13500 is past Pillow's default error threshold (2 x 89.5 Mpx) yet under our 1 Gpx default;
    # the file carries no pixels, so the honest answer is a truncated/corrupt file.
    path = tmp_path / "nodata.png"
    path.write_bytes(png_header_only(13_500, 13_500, 1, 0))
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert not isinstance(info.value, ImageTooLargeError)
    assert str(path) in str(info.value)


def write_and_truncate(tmp_path, fmt, suffix):
    buf = io.BytesIO()
    Image.fromarray(rng_image((64, 64, 3), seed=4)).save(buf, fmt)
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


@pytest.mark.parametrize("fmt, suffix", [("PNG", ".png"), ("JPEG", ".jpg"), ("TIFF", ".tif"),
                                         ("BMP", ".bmp")])
def test_truncated_files(tmp_path, fmt, suffix):
    path = write_and_truncate(tmp_path, fmt, suffix)
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content, fragment", [
    (b"", "empty file"),
    (b"this is not an image at all" * 10, "not a recognised image format"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 5, "not a recognised image format"),
])
def test_bad_files_name_file_and_reason(tmp_path, content, fragment):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert str(path) in str(info.value) and fragment in str(info.value)
    with pytest.raises(ImageReadError):
        image_size(path)


def test_missing_file_and_folder(tmp_path):
    missing = tmp_path / "nope.png"
    with pytest.raises(ImageReadError) as info:
        read_image(missing)
    assert str(missing) in str(info.value) and "not found" in str(info.value)
    with pytest.raises(ImageReadError) as info:
        read_image(tmp_path)
    assert str(tmp_path) in str(info.value) and "folder" in str(info.value)


def test_to_display_rgb_uint8_passthrough():
    gray = rng_image((3, 4))
    out = to_display_rgb(gray)
    assert out.shape == (3, 4, 3) and out.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], gray)
    rgba = rng_image((3, 4, 4), seed=5)
    np.testing.assert_array_equal(to_display_rgb(rgba), rgba[:, :, :3])


def reference_stretch(img, lo_pct=0.5, hi_pct=99.5):
    rgb = img[:, :, :3] if img.ndim == 3 else np.dstack([img] * 3)
    lo, hi = np.percentile(rgb, [lo_pct, hi_pct], method="inverted_cdf")
    return np.clip(np.rint((rgb.astype(np.float64) - lo) * 255.0 / (hi - lo)), 0, 255).astype(np.uint8)


def test_to_display_rgb_16bit_percentile_stretch():
    rng = np.random.default_rng(6)
    img = rng.normal(3000, 400, size=(50, 40)).clip(0, 65535).astype(np.uint16)
    img[0, 0] = 65535  # a hot pixel must not flatten the contrast
    out = to_display_rgb(img)
    expected = reference_stretch(img)
    np.testing.assert_array_equal(out, expected)
    assert out.shape == (50, 40, 3)
    # the stretch spans nearly the whole range
    assert (out == 0).mean() <= 0.01 and (out == 255).mean() <= 0.01
    rgb16 = rng_image((20, 30, 4), np.uint16, seed=7)
    np.testing.assert_array_equal(to_display_rgb(rgb16), reference_stretch(rgb16))


def test_to_display_rgb_constant_16bit_does_not_divide_by_zero():
    out = to_display_rgb(np.full((3, 3), 1234, np.uint16))
    assert out.shape == (3, 3, 3) and (out == 0).all()


def test_to_model_rgb():
    u8 = rng_image((4, 5, 4), seed=8)
    out = to_model_rgb(u8)
    assert out.dtype == np.float32 and out.shape == (4, 5, 3)
    np.testing.assert_allclose(out, u8[:, :, :3] / 255.0, rtol=1e-6)
    u16 = rng_image((4, 5), np.uint16, seed=9)
    out16 = to_model_rgb(u16)
    assert out16.shape == (4, 5, 3)
    np.testing.assert_allclose(out16[:, :, 1], u16 / 65535.0, rtol=1e-6)
    assert 0.0 <= out16.min() and out16.max() <= 1.0


def test_module_does_not_leave_pillow_guard_disabled(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(rng_image((2, 2))).save(path)
    before = Image.MAX_IMAGE_PIXELS
    read_image(path)
    image_size(path)
    assert Image.MAX_IMAGE_PIXELS == before is not None
    assert images.get_max_pixels() == DEFAULT_MAX_PIXELS
