"""ClassPanel: table contents, selection, visibility, show-only, colours, counts, digit keys."""
from __future__ import annotations

from PySide6.QtCore import Qt

from segstudio.core.io.classes import ClassTable
from segstudio.ui.class_panel import COL_COLOR, COL_GT, COL_NAME, COL_PRED, COL_SHOW, ClassPanel


def make_panel(qtbot, table=None) -> ClassPanel:
    panel = ClassPanel()
    qtbot.addWidget(panel)
    panel.set_class_table(table or ClassTable.voc())
    panel.resize(380, 420)
    return panel


def test_rows_mirror_the_table(qtbot):
    table = ClassTable.voc()
    panel = make_panel(qtbot, table)
    assert panel.table.rowCount() == table.num_classes == 21
    assert panel.table.item(15, COL_NAME).text() == "person"
    assert panel.swatch_color(15) == table.classes[15].color == (192, 128, 128, 255)
    assert panel.table.item(15, COL_COLOR).data(Qt.ItemDataRole.DecorationRole).getRgb() == (192, 128, 128, 255)
    assert panel.current_class() == 1  # first foreground class by default
    assert panel.hidden_classes() == frozenset()


def test_pixel_counts(qtbot):
    panel = make_panel(qtbot)
    gt = list(range(21))
    gt[0] = 1234567
    panel.set_pixel_counts(gt, None)
    assert panel.table.item(0, COL_GT).text() == "1,234,567"
    assert panel.table.item(3, COL_GT).text() == "3"
    assert panel.table.item(3, COL_PRED).text() == ""
    panel.set_pixel_counts(None, [5] * 10)  # shorter than the table: the rest stay blank
    assert panel.table.item(9, COL_PRED).text() == "5" and panel.table.item(10, COL_PRED).text() == ""
    assert panel.table.item(0, COL_GT).text() == ""


def test_selection_by_click_api_and_digit_keys(qtbot):
    panel = make_panel(qtbot)
    with qtbot.waitSignal(panel.class_selected) as blocker:
        panel.table.setCurrentCell(7, COL_NAME)
    assert blocker.args == [7]
    with qtbot.waitSignal(panel.class_selected) as blocker:
        panel.select_class(12)
    assert blocker.args == [12] and panel.current_class() == 12
    with qtbot.waitSignal(panel.class_selected) as blocker:
        qtbot.keyClick(panel.table, Qt.Key.Key_3)
    assert blocker.args == [3] and panel.current_class() == 3
    with qtbot.assertNotEmitted(panel.class_selected):
        panel.select_class(40)
    assert panel.current_class() == 3


def test_visibility_checkbox_and_show_only(qtbot):
    panel = make_panel(qtbot)
    hidden_sets = []
    panel.hidden_classes_changed.connect(hidden_sets.append)
    with qtbot.waitSignal(panel.class_visibility_changed) as blocker:
        panel.table.item(4, COL_SHOW).setCheckState(Qt.CheckState.Unchecked)
    assert blocker.args == [4, False]
    assert hidden_sets == [frozenset({4})]
    panel.select_class(15)
    with qtbot.waitSignal(panel.show_only_requested) as blocker:
        panel.show_only_button.click()
    assert blocker.args == [15]
    assert panel.hidden_classes() == frozenset(set(range(21)) - {15}) == hidden_sets[-1]
    assert panel.table.item(15, COL_SHOW).checkState() == Qt.CheckState.Checked
    assert panel.table.item(4, COL_SHOW).checkState() == Qt.CheckState.Unchecked
    with qtbot.waitSignal(panel.hidden_classes_changed) as blocker:
        panel.show_all_button.click()
    assert blocker.args == [frozenset()]
    assert all(panel.table.item(r, COL_SHOW).checkState() == Qt.CheckState.Checked for r in range(21))
    with qtbot.waitSignal(panel.class_visibility_changed) as blocker:
        panel.set_class_visible(7, False)
    assert blocker.args == [7, False] and panel.hidden_classes() == frozenset({7})


def test_context_menu_actions(qtbot):
    panel = make_panel(qtbot)
    menu = panel.context_menu_for(8)
    texts = [a.text() for a in menu.actions() if not a.isSeparator()]
    assert texts == ["Show only cat", "Show all classes", "Change colour of cat…"]
    with qtbot.waitSignal(panel.show_only_requested) as blocker:
        menu.actions()[0].trigger()
    assert blocker.args == [8]
    menu.deleteLater()


def test_colour_change_updates_swatch_and_emits(qtbot):
    panel = make_panel(qtbot)
    with qtbot.waitSignal(panel.class_color_changed) as blocker:
        panel.apply_class_color(2, (10, 20, 30))
    assert blocker.args == [2, (10, 20, 30, 255)]
    assert panel.swatch_color(2) == (10, 20, 30, 255)
    # the owner builds the new immutable table and hands it back; hidden set and selection survive
    panel.set_class_visible(5, False)
    panel.select_class(6)
    table = panel.class_table().with_color(2, (10, 20, 30, 255))
    panel.set_class_table(table)
    assert panel.swatch_color(2) == (10, 20, 30, 255)
    assert panel.hidden_classes() == frozenset({5}) and panel.current_class() == 6
    panel.set_class_table(ClassTable.generic(3))  # smaller table: out-of-range state dropped
    assert panel.hidden_classes() == frozenset() and panel.current_class() == 1


def test_grab(qtbot):
    panel = make_panel(qtbot, ClassTable.cityscapes())
    panel.set_pixel_counts([i * 1000 for i in range(19)], [i * 900 for i in range(19)])
    panel.set_class_visible(2, False)
    panel.show()
    qtbot.waitExposed(panel)
    assert panel.grab().save("/tmp/segstudio_class_panel.png")
