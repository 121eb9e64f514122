"""CanvasView: exact pixels, partial redraws, huge images, navigation and the tool hook."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from segstudio.core.display.render import fold_instance_ids, instance_lut
from segstudio.ui.canvas import BACKGROUND, CanvasView
from segstudio.ui.canvas_layers import TILE

VIEW_W, VIEW_H = 400, 300


@pytest.fixture
def canvas(qtbot):
    view = CanvasView()
    qtbot.addWidget(view)
    view.resize(VIEW_W, VIEW_H)
    with qtbot.waitExposed(view):
        view.show()
    return view


def frame(view: CanvasView) -> np.ndarray:
    """The viewport as an HxWx4 RGBA uint8 array."""
    image = view.render_viewport()
    ptr = image.constBits()
    bgra = np.frombuffer(ptr, np.uint8).reshape(image.height(), image.bytesPerLine() // 4, 4)
    bgra = bgra[:, : image.width()]
    return bgra[..., [2, 1, 0, 3]].copy()


def pixel_index_grid(view: CanvasView) -> tuple[np.ndarray, np.ndarray]:
    """Image pixel (x, y) under the centre of every viewport pixel (-1 outside the image)."""
    h, w = view.image_shape
    xs = np.array([math.floor(view.image_pos_at(QPointF(vx + 0.5, 0))[0]) for vx in range(VIEW_W)])
    ys = np.array([math.floor(view.image_pos_at(QPointF(0, vy + 0.5))[1]) for vy in range(VIEW_H)])
    xs[(xs < 0) | (xs >= w)] = -1
    ys[(ys < 0) | (ys >= h)] = -1
    return np.meshgrid(xs, ys)


def expected_view(view, base_rgb, overlays) -> np.ndarray:
    """Independent reference: sample the image per screen pixel, then alpha-blend each LUT overlay."""
    gx, gy = pixel_index_grid(view)
    inside = (gx >= 0) & (gy >= 0)
    out = np.empty((VIEW_H, VIEW_W, 3), np.float64)
    out[:] = (BACKGROUND.red(), BACKGROUND.green(), BACKGROUND.blue())
    out[inside] = base_rgb[gy[inside], gx[inside]]
    for labels, lut, opacity in overlays:
        colours = lut[labels[gy[inside], gx[inside]]].astype(np.float64)
        alpha = np.rint(colours[:, 3] * opacity)[:, None] / 255.0
        out[inside] = colours[:, :3] * alpha + out[inside] * (1.0 - alpha)
    return out


def test_one_to_one_blend_matches_numpy(canvas, rng=np.random.default_rng(1)):
    image = rng.integers(0, 256, (VIEW_H, VIEW_W, 3), dtype=np.uint8)
    labels = np.zeros((VIEW_H, VIEW_W), np.uint8)
    labels[40:120, 60:260] = 1
    labels[100:220, 200:380] = 2
    lut = np.zeros((256, 4), np.uint8)
    lut[1] = (255, 0, 0, 255)
    lut[2] = (0, 64, 255, 128)
    canvas.set_image(image)
    canvas.set_layer("gt", labels, lut, opacity=0.5)
    canvas.zoom_actual()
    assert canvas.zoom() == pytest.approx(1.0)
    got = frame(canvas)
    want = expected_view(canvas, image, [(labels, lut, 0.5)])
    assert np.abs(got[..., :3].astype(int) - want).max() <= 1
    # spot checks against hand-computed values: pure image, 50 % red, 25 % blue
    gx, gy = pixel_index_grid(canvas)
    vy, vx = np.argwhere((gx == 10) & (gy == 10))[0]
    assert tuple(got[vy, vx, :3]) == tuple(image[10, 10])
    vy, vx = np.argwhere((gx == 100) & (gy == 50))[0]
    assert np.allclose(got[vy, vx, :3], 0.5 * np.array([255, 0, 0]) + 0.5 * image[50, 100], atol=1)
    vy, vx = np.argwhere((gx == 300) & (gy == 200))[0]
    a = 64 / 255
    assert np.allclose(got[vy, vx, :3], a * np.array([0, 64, 255]) + (1 - a) * image[200, 300], atol=1)


def test_hidden_reordered_and_recoloured_layers(canvas):
    image = np.full((VIEW_H, VIEW_W), 90, np.uint8)  # gray image path
    ones = np.ones((VIEW_H, VIEW_W), np.uint8)
    red, green = np.zeros((256, 4), np.uint8), np.zeros((256, 4), np.uint8)
    red[1], green[1] = (255, 0, 0, 255), (0, 255, 0, 255)
    canvas.set_image(image)
    canvas.set_layer("a", ones, red)
    canvas.set_layer("b", ones, green)
    centre = (VIEW_H // 2, VIEW_W // 2)
    assert tuple(frame(canvas)[centre][:3]) == (0, 255, 0)
    canvas.set_layer_order(["image", "b", "a"])
    assert canvas.layer_names() == ["image", "b", "a"]
    assert tuple(frame(canvas)[centre][:3]) == (255, 0, 0)
    canvas.set_layer_visible("a", False)
    assert tuple(frame(canvas)[centre][:3]) == (0, 255, 0)
    blue = green.copy()
    blue[1] = (0, 0, 255, 255)
    canvas.set_layer_lut("b", blue)
    assert tuple(frame(canvas)[centre][:3]) == (0, 0, 255)
    canvas.set_layer_opacity("b", 0.0)
    assert tuple(frame(canvas)[centre][:3]) == (90, 90, 90)
    info = canvas.layer("b")
    assert info.opacity == 0.0 and info.visible and info.array is ones and info.kind == "indexed"
    canvas.set_layer("b", ones.copy(), blue)  # a new array keeps the layer's opacity, visibility, place
    assert canvas.layer("b").opacity == 0.0 and canvas.layer("b").visible
    assert canvas.layer_names() == ["image", "b", "a"]
    canvas.set_layer("b", None)
    assert canvas.layer_names() == ["image", "a"]
    with pytest.raises(ValueError):
        canvas.set_layer("bad", np.zeros((10, 10), np.uint8), red)


def test_update_layer_region_redraws_exactly_the_rect(canvas):
    image = np.zeros((VIEW_H, VIEW_W, 3), np.uint8)
    labels = np.zeros((VIEW_H, VIEW_W), np.uint8)
    lut = np.zeros((256, 4), np.uint8)
    lut[3] = (255, 255, 0, 255)
    canvas.set_image(image)
    canvas.set_layer("gt", labels, lut)
    canvas.zoom_actual()
    before = frame(canvas)
    pixels_before = canvas.render_stats("gt").pixels_rendered
    labels[10:20, 30:50] = 3  # in place: the canvas holds a reference
    canvas.update_layer_region("gt", 30, 10, 20, 10)
    after = frame(canvas)
    assert canvas.render_stats("gt").pixels_rendered - pixels_before == 200  # O(rect), not O(tile)
    changed = np.any(after != before, axis=2)
    gx, gy = pixel_index_grid(canvas)
    in_rect = (gx >= 30) & (gx < 50) & (gy >= 10) & (gy < 20)
    assert np.array_equal(changed, in_rect)
    assert np.all(after[in_rect][:, :3] == (255, 255, 0))


def test_huge_label_layer_renders_only_visible_tiles(canvas):
    labels = np.zeros((20000, 20000), np.uint8)  # zero pages: untouched memory stays unallocated
    labels[10000:10100, 10000:10100] = 1
    lut = np.zeros((256, 4), np.uint8)
    lut[1] = (255, 0, 255, 255)
    canvas.set_layer("gt", labels, lut)
    canvas.fit_to_window()
    frame(canvas)
    stats = canvas.render_stats("gt")
    assert stats.tiles_rendered == 1  # the whole image is one tile of a coarse level
    assert all(level >= 5 for level, _, _ in canvas.cached_tiles("gt"))
    canvas.center_on_rect(10000, 10000, 100, 100)
    got = frame(canvas)
    assert tuple(got[VIEW_H // 2, VIEW_W // 2][:3]) == (255, 0, 255)
    per_view = math.ceil(VIEW_W / TILE / canvas.zoom() + 1) * math.ceil(VIEW_H / TILE / canvas.zoom() + 1)
    assert stats.tiles_rendered <= 1 + per_view
    assert canvas.tile_cache.bytes_used <= (1 + per_view) * TILE * TILE * 4  # never a full ARGB copy


def test_wide_ids_render_through_a_gathered_lut(canvas):
    ids = np.zeros((VIEW_H, VIEW_W), np.int32)
    ids[:, :100] = 300
    ids[:, 100:200] = 70000  # above 65535: folded
    folded = fold_instance_ids(ids)
    lut = instance_lut(65536)
    canvas.set_image(np.zeros((VIEW_H, VIEW_W, 3), np.uint8))
    canvas.set_layer("instances", folded, lut)
    canvas.zoom_actual()
    got = frame(canvas)
    gx, gy = pixel_index_grid(canvas)
    for x in (50, 150):
        vy, vx = np.argwhere((gx == x) & (gy == 100))[0]
        assert tuple(got[vy, vx, :3]) == tuple(lut[folded[100, x], :3])
    short = instance_lut(256)  # ids past the table are transparent, not wrapped
    canvas.set_layer_lut("instances", short)
    vy, vx = np.argwhere((gx == 50) & (gy == 100))[0]
    assert tuple(frame(canvas)[vy, vx, :3]) == (0, 0, 0)


def test_zoomed_out_uses_pyramid_with_right_colours(canvas):
    labels = np.zeros((3000, 4000), np.uint8)
    labels[:, 2000:] = 1
    image = np.full((3000, 4000, 3), 200, np.uint8)
    lut = np.zeros((256, 4), np.uint8)
    lut[0], lut[1] = (0, 0, 255, 255), (255, 0, 0, 255)
    canvas.set_image(image)
    canvas.set_layer("gt", labels, lut)
    assert canvas.zoom() == pytest.approx(0.1)
    got = frame(canvas)
    assert {level for level, _, _ in canvas.cached_tiles("gt")} == {3}
    assert {level for level, _, _ in canvas.cached_tiles("image")} == {3}
    assert tuple(got[150, 100, :3]) == (0, 0, 255)
    assert tuple(got[150, 300, :3]) == (255, 0, 0)


def send_wheel(view, pos: QPoint, dy: int, modifiers=Qt.KeyboardModifier.NoModifier):
    event = QWheelEvent(QPointF(pos), QPointF(view.viewport().mapToGlobal(pos)), QPoint(0, 0), QPoint(0, dy),
                        Qt.MouseButton.NoButton, modifiers, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(view.viewport(), event)


def test_wheel_zoom_keeps_point_under_cursor(canvas, qtbot):
    canvas.set_image(np.zeros((800, 1000, 3), np.uint8))
    pos = QPoint(123, 77)
    fit = canvas.zoom()
    before = canvas.image_pos_at(QPointF(pos))
    with qtbot.waitSignal(canvas.zoom_changed) as blocker:
        send_wheel(canvas, pos, 120)
    assert blocker.args[0] == pytest.approx(fit * 1.25)
    for _ in range(3):
        send_wheel(canvas, pos, 240)
    assert canvas.zoom() == pytest.approx(fit * 1.25**7)
    # scrolling is in whole screen pixels: half a pixel at the first and at the last zoom, no drift
    bound = 0.5 / fit + 0.5 / canvas.zoom() + 1e-6
    assert canvas.image_pos_at(QPointF(pos)) == pytest.approx(before, abs=bound)
    for _ in range(10):
        send_wheel(canvas, pos, -360)
        send_wheel(canvas, pos, 360)
    assert canvas.image_pos_at(QPointF(pos)) == pytest.approx(before, abs=bound)


def test_ctrl_wheel_requests_brush_resize_without_zooming(canvas, qtbot):
    canvas.set_image(np.zeros((100, 100), np.uint8))
    zoom = canvas.zoom()
    with qtbot.waitSignal(canvas.brush_resize_requested) as blocker:
        send_wheel(canvas, QPoint(50, 50), -240, Qt.KeyboardModifier.ControlModifier)
    assert blocker.args == [-2]
    assert canvas.zoom() == zoom


def test_center_on_rect_centres_and_fills_sixty_percent(canvas):
    canvas.set_image(np.zeros((800, 1000, 3), np.uint8))
    canvas.center_on_rect(900, 700, 80, 40)  # near the corner: still centred
    assert canvas.zoom() == pytest.approx(0.6 * min(VIEW_W / 80, VIEW_H / 40))
    cx, cy = canvas.image_pos_at(QPointF(VIEW_W / 2, VIEW_H / 2))
    assert (cx, cy) == pytest.approx((940, 720), abs=1.0 / canvas.zoom())


def test_fit_and_keys(canvas, qtbot):
    canvas.set_image(np.zeros((600, 800, 3), np.uint8))
    assert canvas.zoom() == pytest.approx(0.5)
    qtbot.keyClick(canvas, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert canvas.zoom() == pytest.approx(1.0)
    qtbot.keyClick(canvas, Qt.Key.Key_Plus)
    assert canvas.zoom() == pytest.approx(1.25)
    qtbot.keyClick(canvas, Qt.Key.Key_Minus)
    qtbot.keyClick(canvas, Qt.Key.Key_Minus)
    assert canvas.zoom() == pytest.approx(0.8)
    qtbot.keyClick(canvas, Qt.Key.Key_F)
    assert canvas.zoom() == pytest.approx(0.5)
    x, y, w, h = canvas.visible_image_rect()
    assert (x, y, w, h) == pytest.approx((0, 0, 800, 600), abs=2)


def test_cursor_moved_reports_image_pixels(canvas, qtbot):
    canvas.set_image(np.zeros((500, 1000, 3), np.uint8))  # zoom 0.4: image rows 50..250 on screen
    target = QPoint(201, 101)
    x, y = canvas.image_pos_at(QPointF(target))
    with qtbot.waitSignal(canvas.cursor_moved) as blocker:
        qtbot.mouseMove(canvas.viewport(), target)
    assert blocker.args == [math.floor(x), math.floor(y)]
    assert blocker.args == [502, 127]
    with qtbot.waitSignal(canvas.cursor_moved) as blocker:
        qtbot.mouseMove(canvas.viewport(), QPoint(200, 20))
    assert blocker.args == [-1, -1]


class RecordingTool:
    def __init__(self):
        self.calls = []

    def press(self, x, y, buttons, modifiers):
        self.calls.append(("press", x, y, buttons))

    def move(self, x, y, buttons, modifiers):
        self.calls.append(("move", x, y, buttons))

    def release(self, x, y, buttons, modifiers):
        self.calls.append(("release", x, y, buttons))


def test_tool_receives_image_coordinates_and_panning_bypasses_it(canvas, qtbot):
    canvas.set_image(np.zeros((300, 400, 3), np.uint8))
    canvas.zoom_by(2.0)
    tool = RecordingTool()
    canvas.set_tool(tool)
    vp = canvas.viewport()
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=QPoint(100, 100))
    qtbot.mouseMove(vp, QPoint(120, 110))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=QPoint(120, 110))
    kinds = [c[0] for c in tool.calls]
    assert kinds[0] == "press" and kinds[-1] == "release" and "move" in kinds
    assert tool.calls[0][1:3] == pytest.approx(canvas.image_pos_at(QPointF(100, 100)))
    assert tool.calls[-1][1:3] == pytest.approx(canvas.image_pos_at(QPointF(120, 110)))
    assert tool.calls[0][1] == pytest.approx(100 / 2.0 + 100, abs=1)  # view x 100 at zoom 2, left edge 100

    tool.calls.clear()
    before = canvas.image_pos_at(QPointF(200, 150))
    qtbot.mousePress(vp, Qt.MouseButton.MiddleButton, pos=QPoint(200, 150))
    qtbot.mouseMove(vp, QPoint(160, 130))
    qtbot.mouseRelease(vp, Qt.MouseButton.MiddleButton, pos=QPoint(160, 130))
    assert not [c for c in tool.calls if c[0] != "move" or c[3] != Qt.MouseButton.NoButton]
    after = canvas.image_pos_at(QPointF(160, 130))
    assert after == pytest.approx(before, abs=0.5)  # the grabbed point followed the mouse

    qtbot.keyPress(canvas, Qt.Key.Key_Space)
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=QPoint(100, 100))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=QPoint(100, 100))
    qtbot.keyRelease(canvas, Qt.Key.Key_Space)
    assert not [c for c in tool.calls if c[0] in ("press", "release")]
    canvas.set_tool(None)
    assert canvas.tool() is None


def test_brush_cursor_drawn_at_true_size(canvas, qtbot):
    canvas.set_image(np.zeros((300, 400, 3), np.uint8))
    canvas.zoom_by(2.0)  # zoom 2
    canvas.set_brush_cursor(10)  # 10 image px -> 20 screen px radius
    centre = QPoint(200, 150)
    with qtbot.waitSignal(canvas.cursor_moved):
        qtbot.mouseMove(canvas.viewport(), centre)
    got = frame(canvas)[..., :3].astype(int)
    ring = got[150, 200 + 20]
    assert ring.sum() > 0  # the ring
    assert got[150, 200].sum() == 0 and got[150, 200 + 30].sum() == 0  # inside / outside: image
    canvas.set_brush_cursor(None)
    assert frame(canvas)[..., :3].sum() == 0


def test_new_image_shape_drops_stale_overlays_and_refits(canvas):
    lut = np.zeros((256, 4), np.uint8)
    canvas.set_image(np.zeros((300, 400, 3), np.uint8))
    canvas.set_layer("gt", np.zeros((300, 400), np.uint8), lut, opacity=0.4)
    canvas.zoom_by(3.0)
    canvas.set_image(np.zeros((300, 400, 3), np.uint8))  # same shape: overlays stay
    assert canvas.layer_names() == ["image", "gt"] and canvas.zoom() == pytest.approx(1.0)
    canvas.set_image(np.zeros((150, 100), np.uint8))
    assert canvas.layer_names() == ["image"]
    assert canvas.image_shape == (150, 100) and canvas.zoom() == pytest.approx(2.0)


def test_void_qt_calls_keep_none_alive():
    """PySide6 6.12.0 on Python 3.11 drops a None reference per void call and aborts the app (ADR 6)."""
    import sys

    from PySide6.QtCore import QRect

    rect = QRect()
    before = sys.getrefcount(None)
    for _ in range(256):
        rect.setWidth(1)
    assert before - sys.getrefcount(None) < 64, "this PySide6 build leaks None; see docs/adr/0006"


def test_zoomed_out_composites_match_numpy_and_are_invalidated(canvas, rng=np.random.default_rng(2)):
    # 800 x 600 fits the 400 x 300 view at zoom 0.5: level 1 shown at its size, drawn from composites.
    # Everything is constant over 2 x 2 blocks, so level 1 equals the image and the numpy blend is exact.
    def blocks(a):
        return np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)

    image = blocks(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))
    gt, err = np.zeros((600, 800), np.uint8), np.zeros((600, 800), np.uint8)
    gt[40:240, 60:520], gt[200:440, 400:760] = 1, 2
    err[100:500, 300:600] = 1
    lut = np.zeros((256, 4), np.uint8)
    lut[1], lut[2], lut[3] = (255, 0, 0, 255), (0, 64, 255, 128), (255, 255, 0, 255)
    err_lut = np.zeros((256, 4), np.uint8)
    err_lut[1] = (0, 255, 0, 200)
    canvas.set_image(image)
    canvas.set_layer("gt", gt, lut, opacity=0.5)
    canvas.set_layer("err", err, err_lut, opacity=0.7)
    assert canvas.zoom() == pytest.approx(0.5)

    def check(overlays) -> np.ndarray:
        """Two frames: the first after a change draws the layers directly, the next from composites."""
        direct = frame(canvas)
        composited = frame(canvas)
        assert canvas.cached_composites(), "the steady frame is drawn from composites"
        assert np.array_equal(composited, direct)
        assert np.abs(composited[..., :3].astype(int) - expected_view(canvas, image, overlays)).max() <= 1
        return composited

    before = check([(gt, lut, 0.5), (err, err_lut, 0.7)])
    stats = canvas.composite_stats()
    tiles, pixels = stats.tiles_composited, stats.pixels_composited
    assert tiles == 1 and canvas.cached_composites() == [(1, 0, 0)]  # level 1 is one 400 x 300 tile
    frame(canvas)
    assert stats.tiles_composited == tiles  # cached: a steady frame redraws nothing

    # an in-place edit patches the composite it touches, O(rect), and changes exactly that rect
    gt[10:20, 30:50] = 3
    canvas.update_layer_region("gt", 30, 10, 20, 10)
    after = frame(canvas)
    assert stats.tiles_composited == tiles and stats.regions_composited == 1
    assert 0 < stats.pixels_composited - pixels <= (20 // 2 + 4) * (10 // 2 + 4)
    gx, gy = pixel_index_grid(canvas)
    in_rect = (gx >= 30) & (gx < 50) & (gy >= 10) & (gy < 20)
    assert np.array_equal(np.any(after != before, axis=2), in_rect)
    assert np.abs(after[..., :3].astype(int) - expected_view(canvas, image, [(gt, lut, 0.5), (err, err_lut, 0.7)])
                  ).max() <= 1
    yellow = in_rect & (err[gy, gx] == 0)  # 50 % yellow over the image
    a = np.rint(255 * 0.5) / 255
    assert np.abs(after[yellow][:, :3] - (a * np.array([255, 255, 0]) + (1 - a) * image[gy, gx][yellow])).max() <= 1

    # opacity, visibility and order changes drop every composite; the next steady frame redraws them
    canvas.set_layer_opacity("gt", 0.25)
    assert canvas.cached_composites() == []
    check([(gt, lut, 0.25), (err, err_lut, 0.7)])
    canvas.set_layer_visible("err", False)
    assert canvas.cached_composites() == []
    check([(gt, lut, 0.25)])
    canvas.set_layer_visible("err", True)
    canvas.set_layer_order(["image", "err", "gt"])
    assert canvas.cached_composites() == []
    got = check([(err, err_lut, 0.7), (gt, lut, 0.25)])
    vy, vx = np.argwhere((gx == 451) & (gy == 151))[0]  # gt red (25 %) over err green (70 %) over image
    green = np.rint(200 * 0.7) / 255 * np.array([0, 255, 0]) + (1 - np.rint(200 * 0.7) / 255) * image[151, 451]
    red = np.rint(255 * 0.25) / 255
    assert np.allclose(got[vy, vx, :3], red * np.array([255, 0, 0]) + (1 - red) * green, atol=1)
