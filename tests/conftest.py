import os
import tempfile

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Per-user files (the demo's project store and corrections) go to a throwaway folder, so runs never
# share a journal with each other or with the developer's own sessions.
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="segstudio-test-data-")


def pytest_addoption(parser):
    parser.addoption("--run-package", action="store_true", default=False,
                     help="also run the tests marked 'package' (they build the PyInstaller bundle)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-package"):
        return
    skip = pytest.mark.skip(reason="builds the PyInstaller bundle; run with --run-package (make package-test)")
    for item in items:
        if "package" in item.keywords:
            item.add_marker(skip)
