"""LayerPanel: rows, signals for visibility / opacity / order, silent syncing."""
from __future__ import annotations

from segstudio.ui.layer_panel import NAME_ROLE, LayerPanel

LAYERS = [("image", "Image", True, 1.0), ("gt", "Ground truth", True, 0.5),
          ("pred", "Prediction", False, 0.5), ("errors", "Error map", True, 0.7)]


def make_panel(qtbot) -> LayerPanel:
    panel = LayerPanel()
    qtbot.addWidget(panel)
    panel.set_layers(LAYERS)
    panel.resize(360, 240)
    return panel


def test_rows_show_top_layer_first_with_state(qtbot):
    panel = make_panel(qtbot)
    assert panel.layer_order() == ["image", "gt", "pred", "errors"]
    shown = [panel.list.item(i).data(NAME_ROLE) for i in range(panel.list.count())]
    assert shown == ["errors", "pred", "gt", "image"]
    row = panel.row_widget("pred")
    assert row.checkbox.text() == "Prediction" and not row.checkbox.isChecked()
    assert row.slider.value() == 50 and row.percent.text() == "50%"
    assert panel.row_widget("errors").slider.value() == 70


def test_visibility_and_opacity_signals(qtbot):
    panel = make_panel(qtbot)
    with qtbot.waitSignal(panel.visibility_changed) as blocker:
        panel.row_widget("pred").checkbox.click()
    assert blocker.args == ["pred", True]
    assert panel.layer_state("pred")[2] is True
    with qtbot.waitSignal(panel.opacity_changed) as blocker:
        panel.row_widget("gt").slider.setValue(25)
    assert blocker.args == ["gt", 0.25]
    assert panel.row_widget("gt").percent.text() == "25%"
    assert panel.layer_state("gt") == ("gt", "Ground truth", True, 0.25)


def test_silent_sync_emits_nothing(qtbot):
    panel = make_panel(qtbot)
    with qtbot.assertNotEmitted(panel.visibility_changed), qtbot.assertNotEmitted(panel.opacity_changed):
        panel.set_layer_visible("gt", False)
        panel.set_layer_opacity("gt", 0.9)
    assert not panel.row_widget("gt").checkbox.isChecked()
    assert panel.row_widget("gt").slider.value() == 90 and panel.row_widget("gt").percent.text() == "90%"


def test_up_down_buttons_reorder(qtbot):
    panel = make_panel(qtbot)
    panel.select_layer("gt")
    with qtbot.waitSignal(panel.order_changed) as blocker:
        panel.up_button.click()
    assert blocker.args == [["image", "pred", "gt", "errors"]]
    assert panel.selected_layer() == "gt"
    with qtbot.waitSignal(panel.order_changed) as blocker:
        panel.down_button.click()
    assert blocker.args == [["image", "gt", "pred", "errors"]]
    panel.select_layer("errors")
    assert not panel.up_button.isEnabled() and panel.down_button.isEnabled()
    with qtbot.assertNotEmitted(panel.order_changed):
        panel.move_selected(+1)
    panel.select_layer("image")
    assert panel.up_button.isEnabled() and not panel.down_button.isEnabled()
    # rebuilt rows still report: toggling after a reorder names the right layer
    with qtbot.waitSignal(panel.visibility_changed) as blocker:
        panel.row_widget("image").checkbox.click()
    assert blocker.args == ["image", False]


def test_grab(qtbot):
    panel = make_panel(qtbot)
    panel.show()
    qtbot.waitExposed(panel)
    panel.select_layer("gt")
    assert panel.grab().save("/tmp/segstudio_layer_panel.png")
