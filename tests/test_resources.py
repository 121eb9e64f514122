"""``resources/`` is found the same way from a checkout, a wheel and a frozen bundle."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from segstudio import resources

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fresh_lookup(monkeypatch):
    monkeypatch.delenv("SEGSTUDIO_RESOURCES", raising=False)
    resources.resources_root.cache_clear()
    yield
    resources.resources_root.cache_clear()


def test_checkout_finds_the_top_level_folder(fresh_lookup):
    assert resources.resources_root() == ROOT / "resources"
    assert resources.resource_path("demo", "classes.json").is_file()


def test_frozen_bundle_wins_over_the_checkout(fresh_lookup, monkeypatch, tmp_path):
    (tmp_path / "resources" / "demo").mkdir(parents=True)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert resources.resources_root() == tmp_path / "resources"


def test_missing_resource_names_the_path(fresh_lookup):
    with pytest.raises(resources.ResourceNotFound, match="no-such-file.json"):
        resources.resource_path("demo", "no-such-file.json")


@pytest.mark.slow
def test_wheel_ships_resources_inside_the_package(tmp_path):
    """A wheel has no top level: setup.py's build_py copies resources/ to segstudio/_resources."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "-w", str(tmp_path), str(ROOT)], check=True, timeout=300)
    wheel = next(tmp_path.glob("segstudio-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n for n in names if n.startswith("segstudio/_resources/")}
    expected = {f"segstudio/_resources/{p.relative_to(ROOT / 'resources').as_posix()}"
                for p in (ROOT / "resources").rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert expected and expected <= shipped
    assert "segstudio/_resources/demo/model/demo_unet.pth" in shipped
    assert "segstudio/resources.py" in names
