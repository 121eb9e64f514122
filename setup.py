"""Build hook: ship the top-level ``resources/`` folder inside the wheel.

The repository keeps ``resources/`` at the top level; a wheel has no top level,
so ``build_py`` copies it to ``segstudio/_resources`` where
``segstudio.resources`` looks second. Editable installs read ``resources/``
in place.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithResources(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        source = Path(__file__).resolve().parent / "resources"
        target = Path(self.build_lib) / "segstudio" / "_resources"
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithResources})
