"""A model failing on one image, and an image too large to predict whole (issue 10, item 11).

``FailingNet`` is TinyNet refusing any image whose top-left pixel is white: it passes every probe and
fails on real images, alone or inside a batch. The memory estimate is tested with the free memory
monkeypatched low, so no large allocation is needed.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from segstudio import cli
from segstudio.core.errors import PredictionError
from segstudio.core.io.datasets import open_dataset
from segstudio.inference import memory, runner as runner_module
from segstudio.inference.architectures import register_architecture
from segstudio.inference.registry import resolve_model
from segstudio.inference.runner import Runner
from tests.inference.helpers import TinyNet, random_image, save_tiny, write_card

FAILING = "tests.FailingNet"
NAMES = ["c0", "c1", "c2"]


class FailingNet(TinyNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool((x[:, :, 0, 0] > 1.99).all(dim=1).any()):   # white, after (x/255 - 0.5) / 0.25
            raise RuntimeError("shape '[1, 3, 7]' is invalid\nfor input of size 42")
        return super().forward(x)


register_architecture(FAILING, lambda num_classes, **kw: FailingNet(num_classes, **kw), head_key="head.weight",
                      description="test network failing on white-cornered images")


@pytest.fixture
def folder(tmp_path) -> Path:
    """Five 40x60 images with masks; c_bad and e_bad have a white top-left pixel."""
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "class_names.txt").write_text("\n".join(NAMES) + "\n")
    for seed, name in enumerate(["a", "b", "c_bad", "d", "e_bad"]):
        image = random_image(40, 60, seed=seed)
        if name.endswith("_bad"):
            image[0, 0] = 255
        cv2.imwrite(str(root / "images" / f"{name}.png"), image)
        cv2.imwrite(str(root / "masks" / f"{name}.png"), np.zeros((40, 60), np.uint8))
    return root


@pytest.fixture
def model(tmp_path) -> Path:
    path = tmp_path / "failing.pth"
    save_tiny(path, card=False)
    write_card(path, architecture=FAILING, classes=NAMES, mean=[0.5] * 3, std=[0.25] * 3)
    return path


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_the_run_goes_on_past_images_the_model_fails_on(folder, model, batch_size):
    dataset = open_dataset(folder)
    runner = Runner(resolve_model(model), device="cpu", batch_size=batch_size)
    errors = {}
    done = [index for index, _ in runner.predict_dataset(dataset, on_error=lambda i, e: errors.__setitem__(i, e))]
    names = [s.name for s in dataset]
    assert [names[i] for i in done] == ["a", "b", "d"]
    assert sorted(names[i] for i in errors) == ["c_bad", "e_bad"]
    for index, exc in errors.items():
        assert isinstance(exc, PredictionError)
        assert str(exc) == (f"{dataset[index].image_path}: the model failed on this image: RuntimeError: "
                            "shape '[1, 3, 7]' is invalid for input of size 42")


def test_without_on_error_the_failure_is_raised(folder, model):
    runner = Runner(resolve_model(model), device="cpu")
    with pytest.raises(RuntimeError, match="is invalid"):
        list(runner.predict_dataset(open_dataset(folder)))


def test_predict_reports_each_failed_image_and_exits_1(folder, model, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main(["predict", "--model", str(model), "--images", str(folder), "--out", str(out),
                     "--device", "cpu", "--batch-size", "2", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "d.png"]
    failed = [line for line in err if "the model failed on this image" in line]
    assert [line.split(": ")[1] for line in failed] == ["error", "error"]
    assert sorted(Path(line.split(": ")[2]).name for line in failed) == ["c_bad.png", "e_bad.png"]
    assert err[-1] == "segstudio predict: 2 of 5 images failed"


def test_evaluate_scores_the_rest_and_exits_1(folder, model, capsys):
    code = cli.main(["evaluate", "--dataset", str(folder), "--model", str(model), "--device", "cpu"])
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert code == 1
    assert "mean IoU" in captured.out
    assert sum("the model failed on this image" in line and "_bad.png" in line for line in err) == 2
    assert err[-1] == "segstudio evaluate: 2 of 5 images failed"


def test_an_unreadable_image_is_counted_too(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "good.png"), random_image(20, 30))
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    model = tmp_path / "net.pth"
    save_tiny(model)
    code = cli.main(["predict", "--model", str(model), "--images", str(images), "--out", str(tmp_path / "out"),
                     "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1] == "segstudio predict: 1 of 2 images failed"


# -- tiling when the image would not fit ------------------------------------------------------------
@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.pth"
    save_tiny(path)
    return resolve_model(path)


def test_an_image_too_large_for_the_free_memory_is_tiled_with_one_notice(tiny, monkeypatch):
    image = random_image(60, 1100, seed=3)   # wider than one automatic tile
    need = memory.untiled_bytes(60, 1100, 3)
    whole = Runner(tiny, device="cpu").predict(image)
    monkeypatch.setattr(memory, "available_bytes", lambda: need)   # the estimate exceeds half of it
    notices = []
    runner = Runner(tiny, device="cpu", on_notice=notices.append)
    tiled_calls = []
    original = Runner._predict_tiled
    monkeypatch.setattr(Runner, "_predict_tiled", lambda self, *a: tiled_calls.append(a[-2:]) or original(self, *a))
    first, second = runner.predict(image), runner.predict(image)
    assert tiled_calls == [(runner_module.AUTO_TILE, runner_module.AUTO_OVERLAP)] * 2
    assert len(notices) == 1 and "1100x60" in notices[0] and "1024px tiles" in notices[0]
    # TinyNet sees 3 pixels, so blended tiles reproduce the whole-image prediction (to float rounding
    # and the zero padding a tile edge sees under its nearly-zero blend weight).
    np.testing.assert_array_equal(first.mask, whole.mask)
    np.testing.assert_allclose(second.confidence, whole.confidence, atol=1e-3)


@pytest.mark.parametrize("free, width", [(None, 1100), (10**12, 1100), (1, 1000)])
def test_no_tiles_when_memory_suffices_is_unknown_or_the_image_fits_one_tile(tiny, monkeypatch, free, width):
    monkeypatch.setattr(memory, "available_bytes", lambda: free)
    runner = Runner(tiny, device="cpu")
    assert runner._tiles_for(np.zeros((20, width, 3), np.uint8)) is None
    assert runner.notices == []


def test_the_dataset_loader_keeps_auto_tiled_images_alone(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 1)
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a", "b"):
        cv2.imwrite(str(images / f"{name}.png"), random_image(30, 1100, seed=len(name)))
    runner = Runner(tiny, device="cpu", batch_size=2)
    results = list(runner.predict_dataset(open_dataset(images)))
    assert [index for index, _ in results] == [0, 1] and len(runner.notices) == 1


def test_available_memory_falls_back_to_proc_meminfo(monkeypatch, tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16000000 kB\nMemAvailable:    1234567 kB\n")
    monkeypatch.setitem(__import__("sys").modules, "psutil", None)
    monkeypatch.setattr(memory, "MEMINFO", meminfo)
    assert memory.available_bytes() == 1234567 * 1024
    monkeypatch.setattr(memory, "MEMINFO", tmp_path / "absent")
    free = memory.available_bytes()
    assert free is None or free > 0
