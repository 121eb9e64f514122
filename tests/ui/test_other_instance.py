"""Another segstudio holds the dataset (issue 10, item 2): headless, the window opens it read-only, says
so in the status bar for as long as it is, disables the edit tools and saves nothing."""
from __future__ import annotations

from segstudio.core.editing.store import ProjectStore, store_path_for
from tests.ui.editing_helpers import editing_window
from tests.ui.synthetic import make_dataset


def test_a_dataset_held_by_another_instance_opens_read_only(qtbot, tmp_path):
    root = make_dataset(tmp_path / "data")
    other = ProjectStore(store_path_for(root.resolve()), pid=1, host="elsewhere")   # fresh heartbeat: live
    try:
        window = editing_window(qtbot, root)
        editor, warning = window.editor, window.saving.journal_warning
        assert warning.isVisible() and warning.text().startswith("read-only: segstudio (pid 1 on elsewhere)")
        window.grab().save(str(tmp_path / "read_only.png"))
        assert not editor.tool_actions["brush"].isEnabled() and editor.tool_actions["navigate"].isEnabled()
        editor.set_tool("brush")
        assert editor.tool_name == "navigate"
        assert not window.saving.service.save(window.document)
        assert not (root / "corrected").exists()
    finally:
        other.close()
