"""First-time user experience (issue 12): the demo runs by itself, hints, help, legend, icons, theme."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence

from tests.ui.editing_helpers import editing_window, key
from tests.ui.fakes import GatedRunner, fake_controller
from tests.ui.synthetic import make_dataset


@pytest.fixture
def gated():
    return GatedRunner()


def test_the_demo_runs_on_its_first_image_by_itself_and_esc_cancels(qtbot, open_window, gated):
    gated.gate.clear()                      # hold the run: the hint says it runs and how to stop it
    window = open_window(fake_controller(lambda request: gated), size=(1200, 800), device="cpu",
                         demo_tour=True)
    assert window.model_dock.selected_spec() == "demo"
    qtbot.waitUntil(lambda: "cancels" in window.hint.text())      # once the run has started
    assert window.hint.isVisible() and window.controller.busy
    with qtbot.waitSignal(window.controller.job_ended, timeout=10_000):
        key(qtbot, window, Qt.Key.Key_Escape)
    assert window.document.pred is None
    assert window.hint.text().startswith("No prediction yet. Run the model: Ctrl+R")


def test_the_first_screen_shows_an_error_map_and_metrics(qtbot, open_window):
    window = open_window(fake_controller(lambda request: GatedRunner()), size=(1200, 800), device="cpu",
                         demo_tour=True)
    qtbot.waitUntil(lambda: "errors" in window.canvas.layer_names(), timeout=10_000)
    qtbot.waitUntil(lambda: window.metrics_panel.headline("image", "mean_iou") != "–")
    assert not window.hint.isVisible()


def test_no_demo_run_when_a_dataset_is_given(qtbot, tmp_path):
    window = editing_window(qtbot, make_dataset(tmp_path / "data"))
    assert not window.controller.busy and window.document.pred is None
    assert window.hint.isVisible() and "Ctrl+R" in window.hint.text()


def test_the_shortcut_sheet_is_built_from_the_real_actions_and_searchable(qtbot, tmp_path):
    from segstudio.ui.help_dialogs import ShortcutsDialog, shortcut_rows

    window = editing_window(qtbot, make_dataset(tmp_path / "data"))
    rows = shortcut_rows(window)
    expected = {}
    for action in [*window.actions(), *window.findChildren(QAction)]:
        if action.shortcuts() and action.text():
            expected[action.text().replace("&", "")] = action.shortcuts()[0].toString(
                QKeySequence.SequenceFormat.NativeText)
    shown = {name: keys.split(", ")[0] for _where, name, keys, _tip in rows}
    assert len(rows) == len(expected)
    assert shown["Brush"] == "B" and shown["Undo"] == "Ctrl+Z" and shown["Run on this image"] == "Ctrl+R"
    assert shown["Select class 3"] == "3"
    window.editor.tool_actions["brush"].setShortcut(QKeySequence("Shift+B"))   # rebinding shows up
    assert {n: k for _w, n, k, _t in shortcut_rows(window)}["Brush"] == "Shift+B"
    dialog = ShortcutsDialog(window)
    qtbot.addWidget(dialog)
    dialog.search.setText("undo")
    assert dialog.visible_actions() == ["Undo"]
    dialog.search.setText("ctrl+s")
    assert "Save labels" in dialog.visible_actions() and "Undo" not in dialog.visible_actions()


def test_help_menu_opens_getting_started_with_the_real_keys(qtbot, tmp_path):
    from segstudio.ui.help_dialogs import GettingStartedDialog
    from segstudio.ui.menus import show_help

    window = editing_window(qtbot, make_dataset(tmp_path / "data"))
    titles = [a.text() for a in window.menuBar().actions()]
    help_menu = window.menuBar().actions()[titles.index("&Help")].menu()
    assert [a.text() for a in help_menu.actions() if a.text()] == ["Getting started", "Keyboard shortcuts",
                                                                   "About segstudio"]
    dialog = show_help(window, "GettingStartedDialog")
    assert isinstance(dialog, GettingStartedDialog)
    text = dialog.text.toPlainText()
    for heading in ("1. Review the errors", "2. Correct the labels", "3. Save"):
        assert heading in text
    assert "Ctrl+R" in text and "Ctrl+S" in text
    dialog.close()


def test_review_toggle_lives_in_view(qtbot, tmp_path):
    window = editing_window(qtbot, make_dataset(tmp_path / "data"))
    toggle = window.dock("review").toggleViewAction()
    assert toggle in window.view_menu.actions()
    assert toggle not in window.editor.menu.actions()


def test_legend_explains_every_error_code_and_mark(qtbot, tmp_path):
    from segstudio.core.evaluation import errormap
    from segstudio.ui.document_view import MARK_COLORS

    window = editing_window(qtbot, make_dataset(tmp_path / "data"))
    legend = window.legend
    shown_codes = {errormap.CORRECT, errormap.FALSE_POSITIVE, errormap.FALSE_NEGATIVE, errormap.MISCLASSIFIED,
                   errormap.IGNORED}
    assert {errormap.ERROR_NAMES[c] for c in shown_codes} == {legend.rows[k].text().lower() for k in
                                                             ("correct", "false_positive", "false_negative",
                                                              "misclassified", "ignored")}
    assert set(MARK_COLORS) <= set(legend.rows)
    assert all(label.toolTip() for label in legend.rows.values())
    assert not legend.marks_section.isEnabled()
    window.set_instance_view(True)
    assert legend.marks_section.isEnabled()


def test_tools_have_icons_tooltips_and_look_checked(qtbot, tmp_path):
    window = editing_window(qtbot, make_dataset(tmp_path / "data"))
    editor = window.editor
    for name, action in editor.tool_actions.items():
        assert not action.icon().isNull(), name
        assert action.toolTip() and action.isCheckable()
    preserve = editor.toolbar.widgetForAction(editor.preserve_action)
    assert preserve.toolButtonStyle() == Qt.ToolButtonStyle.ToolButtonTextBesideIcon
    editor.preserve_action.setChecked(True)
    assert preserve.isChecked()


def test_brush_size_is_the_painted_diameter(qtbot, tmp_path):
    import numpy as np

    window = editing_window(qtbot, make_dataset(tmp_path / "data"))
    editor, doc = window.editor, window.document
    editor.radius_spin.setValue(9)                      # "9 px"
    assert editor.brush_radius == 4
    before = doc.gt.copy()
    doc.begin_stroke(2)
    doc.paint_dab(30, 24, editor.brush_radius)
    doc.commit_stroke()
    changed = np.argwhere(doc.gt != before)
    rows, cols = changed[:, 0], changed[:, 1]
    assert cols.max() - cols.min() + 1 == 9 and rows.max() - rows.min() + 1 == 9


def test_dark_theme_palette_and_icons(qtbot):
    from PySide6.QtWidgets import QApplication

    from segstudio.ui import icons, theme

    app = QApplication.instance()
    palette, style_sheet = app.palette(), app.styleSheet()
    action = QAction("Brush")
    icons.assign(action, "brush")

    def darkest_pixel():
        image = action.icon().pixmap(24, 24).toImage()
        return min(image.pixelColor(x, y).lightness() for x in range(24) for y in range(24)
                   if image.pixelColor(x, y).alpha() > 200)

    try:
        assert theme.apply_theme(app, Qt.ColorScheme.Dark)
        assert theme.is_dark()
        assert darkest_pixel() > 150            # drawn in the light text colour of the dark theme
        assert not theme.apply_theme(app, Qt.ColorScheme.Light)
        assert not theme.is_dark()
        assert darkest_pixel() < 100            # and redrawn dark when the theme turns light
    finally:
        app.setPalette(palette)
        app.setStyleSheet(style_sheet)
        icons.clear_cache()


def test_icons_fall_back_to_nothing_without_qtawesome(monkeypatch):
    import builtins

    from segstudio.ui import icons

    real_import = builtins.__import__

    def no_qtawesome(name, *args, **kwargs):
        if name == "qtawesome":
            raise ImportError("No module named 'qtawesome'")
        return real_import(name, *args, **kwargs)

    icons.clear_cache()
    monkeypatch.setattr(builtins, "__import__", no_qtawesome)
    assert icons.icon("brush").isNull()
    icons.clear_cache()


def test_status_bar_fields_never_overlap(qtbot, tmp_path):
    window = editing_window(qtbot, make_dataset(tmp_path / "data"), size=(900, 600))
    window.status_pixel.setText("x 12345  y 12345   value (65535, 65535, 65535)   gt: " + "a very long class name " * 6)
    window.saving.journal_warning.setText("edits are not being journalled: disk full")
    window.saving.journal_warning.show()
    qtbot.waitUntil(lambda: window.status_mode.geometry().left() > 0)
    fields = sorted((w.geometry() for w in (window.status_pixel, window.status_mode, window.saving.journal_warning)
                     if w.isVisible()), key=lambda rect: rect.left())
    for left, right in zip(fields, fields[1:]):
        assert left.right() < right.left()
    assert window.width() == 900                     # the long text did not widen the window
