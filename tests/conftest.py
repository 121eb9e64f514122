import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


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
