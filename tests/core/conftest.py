"""Fixtures of the editing-service tests, shared by the modules that drive the service."""
from __future__ import annotations

import pytest

from tests.core.editing_service_helpers import QueuedRunner, make_dataset


@pytest.fixture
def data(tmp_path):
    truth = make_dataset(tmp_path / "d")
    return tmp_path / "d", truth


@pytest.fixture
def runner():
    runner = QueuedRunner()
    yield runner
    runner.shutdown(wait=True)
