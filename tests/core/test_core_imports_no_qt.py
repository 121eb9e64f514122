"""segstudio.core must stay importable without Qt or torch (headless tools, CLI, workers)."""
import json
import subprocess
import sys

SCRIPT = r"""
import importlib, json, pkgutil, sys
import segstudio.core as core
names = sorted(m.name for m in pkgutil.walk_packages(core.__path__, core.__name__ + "."))
for name in names:
    importlib.import_module(name)
heavy = sorted(m for m in sys.modules
               if m.split(".")[0] in ("PySide6", "shiboken6", "pyqtgraph", "torch"))
print(json.dumps({"modules": names, "heavy": heavy}))
"""


def test_core_imports_neither_qt_nor_torch():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "segstudio.core.io.classes" in result["modules"]
    assert "segstudio.core.io.masks" in result["modules"]
    assert result["heavy"] == [], f"core pulled in {result['heavy']}"
