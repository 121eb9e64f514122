"""Runner: input conversions, tiling, cancellation, dataset batching, OOM fallback, instances."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from segstudio.core.io.classes import COCO_CATEGORY_TO_CONTIGUOUS, ClassTable
from segstudio.core.errors import ImageReadError
from segstudio.core.evaluation.prediction import Prediction
from segstudio.inference.registry import ModelEntry, resolve_model
from segstudio.inference.runner import Cancelled, CancelToken, Runner
from tests.inference.helpers import random_image, reference_logits, save_tiny, tiny_mask_rcnn, tiny_net


def _entry(net: nn.Module, num_classes: int, **fields) -> ModelEntry:
    values = dict(name="test", kind="semantic", class_table=ClassTable.generic(num_classes),
                  mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), channel_order="RGB", scale=None,
                  input_size=None, loader=lambda device, progress=None: net.to(device).eval())
    values.update(fields)
    return ModelEntry(**values)


@pytest.fixture(scope="module")
def net():
    return tiny_net(4, seed=3)


def test_gray_rgba_and_16bit_inputs_match_rgb(net):
    runner = Runner(_entry(net, 4), device="cpu")
    rgb = random_image(33, 47, seed=5)
    base = runner.predict(rgb)
    gray = rgb[:, :, 1]
    np.testing.assert_array_equal(runner.predict(gray).mask, runner.predict(np.dstack([gray] * 3)).mask)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    np.testing.assert_array_equal(runner.predict(rgba).mask, base.mask)
    deep = rgb.astype(np.uint16) * 257  # the same intensities in 16 bits
    prediction = runner.predict(deep)
    np.testing.assert_array_equal(prediction.mask, base.mask)
    np.testing.assert_allclose(prediction.confidence, base.confidence, atol=1e-5)
    as_float = rgb.astype(np.float32) / 255
    np.testing.assert_array_equal(runner.predict(as_float).mask, base.mask)


def test_bgr_order_and_explicit_scale(net):
    rgb = random_image(20, 30, seed=6)
    bgr_runner = Runner(_entry(net, 4, channel_order="BGR"), device="cpu")
    rgb_runner = Runner(_entry(net, 4), device="cpu")
    np.testing.assert_array_equal(bgr_runner.predict(rgb[:, :, ::-1]).mask, rgb_runner.predict(rgb).mask)
    twelve_bit = rgb.astype(np.uint16) * 16  # 0-4080 in a 16-bit container
    scaled = Runner(_entry(net, 4, scale=1 / 4080), device="cpu")
    np.testing.assert_array_equal(scaled.predict(twelve_bit).mask, rgb_runner.predict(rgb).mask)


def test_input_size_resizes_then_upsamples_logits_bilinearly(net):
    image = random_image(50, 70, seed=7)
    runner = Runner(_entry(net, 4, input_size=(35, 25)), device="cpu")
    prediction = runner.predict(image)
    import cv2

    small = cv2.resize(image, (35, 25), interpolation=cv2.INTER_AREA)
    logits = F.interpolate(reference_logits(net, small), size=(50, 70), mode="bilinear", align_corners=False)[0]
    agree = (prediction.mask == logits.argmax(0).numpy()).mean()
    assert agree > 0.999
    np.testing.assert_allclose(prediction.confidence, logits.softmax(0).max(0).values.numpy(), atol=1e-4)


def test_tiled_equals_untiled_just_above_one_tile(net):
    image = random_image(150, 170, seed=8)
    whole = Runner(_entry(net, 4), device="cpu").predict(image)
    calls = []
    tiled = Runner(_entry(net, 4), device="cpu", tile_size=128, overlap=32).predict(
        image, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert (tiled.mask == whole.mask).mean() >= 0.995
    assert np.abs(tiled.confidence - whole.confidence).mean() < 1e-3
    np.testing.assert_allclose(tiled.confidence, whole.confidence, atol=0.05)
    assert np.abs(tiled.entropy - whole.entropy).mean() < 1e-3


def test_tiled_pointwise_model_is_exact_and_batches_tiles():
    torch.manual_seed(0)
    pointwise = nn.Conv2d(3, 6, 1).eval()
    image = random_image(300, 200, seed=9)
    whole = Runner(_entry(pointwise, 6), device="cpu").predict(image)
    calls = []
    tiled = Runner(_entry(pointwise, 6), device="cpu", tile_size=96, overlap=24, batch_size=2).predict(
        image, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (12, 12) and len(calls) == 8  # 4 rows x 3 columns, batches of 2 + 1 per row
    np.testing.assert_array_equal(tiled.mask, whole.mask)
    np.testing.assert_allclose(tiled.confidence, whole.confidence, atol=1e-5)


def test_cancel_stops_within_one_tile(net):
    token = CancelToken()
    done = []

    def progress(count, total):
        done.append(count)
        if count == 1:
            token.cancel()

    runner = Runner(_entry(net, 4), device="cpu", tile_size=64, overlap=16)
    with pytest.raises(Cancelled):
        runner.predict(random_image(200, 200), cancel=token, progress=progress)
    assert done == [1]
    token2 = CancelToken()
    token2.cancel()
    with pytest.raises(Cancelled):
        runner.predict(random_image(30, 30), cancel=token2)


def test_cancel_lands_inside_a_forward_pass(net):
    token = CancelToken()
    ran = []

    class Step(nn.Module):
        def __init__(self, name, cancels=False):
            super().__init__()
            self.name, self.cancels = name, cancels

        def forward(self, x):
            ran.append(self.name)
            if self.cancels:
                token.cancel()  # as if the user pressed Cancel while this block computed
            return x

    model = nn.Sequential(Step("first"), Step("second", cancels=True), Step("third"), nn.Conv2d(3, 2, 1))
    runner = Runner(_entry(model, 2), device="cpu")
    with pytest.raises(Cancelled):
        runner.predict(random_image(16, 16), cancel=token)
    assert ran == ["first", "second"]
    ran.clear()
    assert runner.predict(random_image(16, 16)).mask.shape == (16, 16)  # a later job is unaffected
    assert ran == ["first", "second", "third"]


class _Sample:
    def __init__(self, image, fail=False):
        self.image, self.fail = image, fail
        self.image_path = "sample.png"

    def load_image(self):
        if self.fail:
            raise ImageReadError("broken.png", "truncated PNG")
        return self.image


class _CountingNet(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.batches = []

    def forward(self, x):
        self.batches.append(tuple(x.shape))
        return self.inner(x)


def test_predict_dataset_batches_same_sizes_in_order(net):
    sizes = [(40, 50)] * 3 + [(30, 30)] * 2 + [(40, 50)] * 2 + [(20, 25)]
    dataset = [_Sample(random_image(h, w, seed=i)) for i, (h, w) in enumerate(sizes)]
    counting = _CountingNet(net)
    runner = Runner(_entry(counting, 4), device="cpu", batch_size=2)
    progress = []
    results = list(runner.predict_dataset(dataset, progress=lambda d, t: progress.append((d, t))))
    assert [i for i, _ in results] == list(range(len(sizes)))
    assert [b[0] for b in counting.batches] == [2, 1, 2, 2, 1]
    assert progress[-1] == (8, 8) and len(progress) == 5
    single = Runner(_entry(net, 4), device="cpu")
    for (index, prediction), sample in zip(results, dataset):
        np.testing.assert_array_equal(prediction.mask, single.predict(sample.image).mask)
    subset = [i for i, _ in runner.predict_dataset(dataset, indices=[7, 2])]
    assert subset == [7, 2]


def test_predict_dataset_cancels_between_batches_and_stops_the_loader(net):
    dataset = [_Sample(random_image(32, 32, seed=i)) for i in range(12)]
    token = CancelToken()
    runner = Runner(_entry(net, 4), device="cpu", batch_size=3)
    seen = []
    with pytest.raises(Cancelled):
        for index, _ in runner.predict_dataset(dataset, cancel=token, progress=lambda d, t: token.cancel()):
            seen.append(index)
    assert seen == [0, 1, 2]
    assert not any(t.name.startswith("segstudio-prefetch") for t in threading.enumerate())


def test_predict_dataset_load_errors(net):
    dataset = [_Sample(random_image(16, 16)), _Sample(None, fail=True), _Sample(random_image(16, 16))]
    runner = Runner(_entry(net, 4), device="cpu")
    errors = []
    got = [i for i, _ in runner.predict_dataset(dataset, on_error=lambda i, e: errors.append((i, str(e))))]
    assert got == [0, 2] and errors == [(1, "broken.png: truncated PNG")]
    with pytest.raises(ImageReadError):
        list(runner.predict_dataset(dataset))


def test_predict_dataset_with_tiles(net):
    dataset = [_Sample(random_image(150, 90, seed=1)), _Sample(random_image(40, 40, seed=2))]
    runner = Runner(_entry(net, 4), device="cpu", tile_size=64, overlap=16, batch_size=4)
    results = dict(runner.predict_dataset(dataset))
    np.testing.assert_array_equal(results[0].mask, runner.predict(dataset[0].image).mask)
    assert results[1].mask.shape == (40, 40)


class _OomAbove(nn.Module):
    """Raises CUDA OOM for inputs larger than ``limit`` px while ``state['gpu']`` is set."""

    def __init__(self, inner, limit, state):
        super().__init__()
        self.inner, self.limit, self.state = inner, limit, state

    def forward(self, x):
        if self.state["gpu"] and max(x.shape[-2:]) > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner(x)


@pytest.mark.parametrize("limit,expect_cpu", [(300, False), (100, True)])
def test_oom_retries_with_smaller_tiles_then_cpu(net, monkeypatch, limit, expect_cpu):
    state = {"gpu": True}
    monkeypatch.setattr(Runner, "_on_gpu", lambda self: state["gpu"])
    original = Runner._move_to_cpu

    def move(self):
        state["gpu"] = False
        original(self)

    monkeypatch.setattr(Runner, "_move_to_cpu", move)
    notices = []
    runner = Runner(_entry(_OomAbove(net, limit, state), 4), device="cpu", on_notice=notices.append)
    image = random_image(600, 600, seed=4)
    prediction = runner.predict(image)
    expected = Runner(_entry(net, 4), device="cpu").predict(image)
    assert (prediction.mask == expected.mask).mean() > 0.995
    assert notices == runner.notices
    if expect_cpu:
        assert runner.tile_size == 256 and "CPU" in notices[-1] and len(notices) == 3
    else:
        assert runner.tile_size == 256 and len(notices) == 2 and "256px tiles" in notices[-1]


def test_runner_on_a_real_state_dict_file(tmp_path):
    path = tmp_path / "net.pth"
    save_tiny(path, num_classes=3)
    runner = Runner(resolve_model(path), device="auto")
    assert runner.device_name in ("cpu", "mps") or runner.device_name.startswith("cuda")
    prediction = runner.predict(random_image(64, 64))
    assert prediction.mask.max() <= 2


# -- instance models -------------------------------------------------------------------------------
def _fake_detections(height, width):
    masks = torch.zeros(3, 1, height, width)
    masks[0, 0, 2:8, 2:8] = 0.9     # score 0.6, label 1 (person)
    masks[1, 0, 5:10, 5:10] = 0.8   # score 0.9, label 18 (dog) overlaps the first
    masks[2, 0, 0:3, 0:3] = 0.9     # score 0.3: under the threshold
    return {"scores": torch.tensor([0.6, 0.9, 0.3]), "labels": torch.tensor([1, 18, 3]), "masks": masks,
            "boxes": torch.zeros(3, 4)}


class _FakeDetector(nn.Module):
    def forward(self, images):
        return [_fake_detections(*img.shape[-2:]) for img in images]


def test_instances_thresholded_painted_by_score_and_mapped_to_coco_things():
    entry = _entry(_FakeDetector(), 81, kind="instance", class_table=ClassTable.coco_things(),
                   mean=(0.0,) * 3, std=(1.0,) * 3, label_map=COCO_CATEGORY_TO_CONTIGUOUS)
    runner = Runner(entry, device="cpu", score_threshold=0.5)
    prediction = runner.predict(random_image(12, 12))
    assert isinstance(prediction, Prediction) and prediction.confidence is None
    inst = prediction.instances
    assert inst.ids.dtype == np.int32 and inst.ids.shape == (12, 12)
    assert inst.classes == {1: ClassTable.coco_things().index_of("dog"), 2: 1}
    assert inst.scores == pytest.approx({1: 0.9, 2: 0.6})
    assert (inst.ids == 1).sum() == 25 and (inst.ids == 2).sum() == 36 - 9  # the dog wins the overlap
    assert inst.ids[0, 0] == 0  # the low-score detection is dropped
    np.testing.assert_array_equal(prediction.mask > 0, inst.ids > 0)
    assert prediction.mask[6, 6] == inst.classes[1]
    everything = Runner(entry, device="cpu", score_threshold=0.0).predict(random_image(12, 12))
    assert len(everything.instances.classes) == 3


def test_real_mask_rcnn_runs_end_to_end():
    torch.manual_seed(0)
    entry = _entry(tiny_mask_rcnn(3), 3, kind="instance", mean=(0.0,) * 3, std=(1.0,) * 3)
    prediction = Runner(entry, device="cpu", score_threshold=0.0).predict(random_image(70, 90))
    inst = prediction.instances
    assert inst.ids.shape == (70, 90) and prediction.mask.shape == (70, 90)
    assert set(np.unique(inst.ids)) - {0} == set(inst.classes)
    assert all(0 <= c < 3 for c in inst.classes.values())
    assert list(inst.scores) == sorted(inst.scores) and len(inst.scores) > 0
    assert list(inst.scores.values()) == sorted(inst.scores.values(), reverse=True)  # id 1 = best


@pytest.mark.parametrize("requested", ["auto", "cuda"])
def test_unusable_cuda_falls_back_to_cpu_with_a_notice(net, monkeypatch, requested):
    """A GPU build on a machine whose driver is too old must run on the CPU, not crash at load."""
    from segstudio.inference import gpu_check

    broken = {"cuda_available": True, "cuda_usable": False, "device": "cpu",
              "verdict": f"{gpu_check.VERDICT_UNUSABLE}: driver 470.0 is older than CUDA 13 needs"}
    monkeypatch.setattr(gpu_check, "gpu_check", lambda refresh=False: broken)
    notices = []
    runner = Runner(_entry(net, 4), device=requested, on_notice=notices.append)
    assert runner.device.type == "cpu"
    assert notices == runner.notices and len(notices) == 1
    assert "driver 470.0" in notices[0] and "CPU" in notices[0]
    assert runner.predict(random_image(40, 50)).mask.shape == (40, 50)
