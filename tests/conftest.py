import os
import tempfile
import threading

import pytest
from hypothesis import settings

from segstudio.core.tasks import runner_threads

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# Hypothesis profiles. "ci" replays the same examples every run (derandomize, no example database),
# so a red build is reproducible and never depends on what an earlier run stored, and it prints the
# blob that reproduces a failure. "dev" is Hypothesis's default: random examples and a local database
# that retries a failure first next time. HYPOTHESIS_PROFILE picks one; else CI=<anything> picks "ci".
# Both derive from Hypothesis's "default" profile, not the active one, which Hypothesis itself swaps
# for its built-in CI profile when it sees a CI variable.
_default = settings.get_profile("default")
settings.register_profile("ci", parent=_default, derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("dev", parent=_default)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))

# Per-user files (the demo's project store and corrections) go to a throwaway folder, so runs never
# share a journal with each other or with the developer's own sessions.
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="segstudio-test-data-")


@pytest.fixture(autouse=True)
def no_threads_left_alive():
    """Fail a test that leaves a non-daemon thread or a task runner's thread alive.

    Runner threads are daemons (a forgotten one must not hang the app's exit), so they are checked by
    name of owner: whoever makes a runner shuts it down (the window joins its own on close).
    """
    before = set(threading.enumerate())
    yield
    leaked = [t.name for t in runner_threads() if t not in before]
    assert not leaked, f"task runner thread(s) left running: {leaked}"
    leaked = [t.name for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
    assert not leaked, f"threads left running: {leaked}"


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
