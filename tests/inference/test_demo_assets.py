"""The bundled demo: dataset layout and sizes, the model, its IoU, and the generator.

The IoU check runs the shipped weights on four demo fields and scores them with
a confusion matrix written here in plain numpy, independent of segstudio.core.evaluation.metrics.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from segstudio.core.demo import DEMO_MEAN_IOU_RANGE  # noqa: E402
from segstudio.inference.unet import CompactUNet  # noqa: E402
from segstudio.resources import resource_path  # noqa: E402
from tools.demo import synth  # noqa: E402

MB = 1024 * 1024


@pytest.fixture(scope="module")
def demo() -> Path:
    return resource_path("demo")


@pytest.fixture(scope="module")
def card(demo) -> dict:
    return json.loads((demo / "model" / "demo_unet.json").read_text())


@pytest.fixture(scope="module")
def model(demo, card) -> CompactUNet:
    net = CompactUNet(**card["arch_kwargs"])
    state = torch.load(demo / "model" / "demo_unet.pth", map_location="cpu", weights_only=True)
    net.load_state_dict(state)   # strict: every key and shape must match
    return net.eval()


def test_demo_layout_and_sizes(demo):
    images = sorted((demo / "images").glob("*.png"))
    assert 16 <= len(images) <= 24
    for path in images:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        height, width = image.shape[:2]
        assert 384 <= height <= 512 and 384 <= width <= 512
        mask = Image.open(demo / "masks" / path.name)
        assert mask.mode == "P" and mask.size == (width, height)
        ids = np.asarray(mask)
        assert set(np.unique(ids)) <= {0, 1, 2, 3}
        instances = cv2.imread(str(demo / "instances" / path.name), cv2.IMREAD_UNCHANGED)
        assert instances.dtype == np.uint16 and instances.shape == (height, width)
        # Instances lie exactly on the labelled (non-background) pixels.
        np.testing.assert_array_equal(instances > 0, ids > 0)
    total = sum(p.stat().st_size for p in demo.rglob("*") if p.is_file())
    assert total <= 15 * MB


def test_palette_holds_class_colours(demo):
    table = json.loads((demo / "classes.json").read_text())
    palette = np.array(Image.open(next((demo / "masks").glob("*.png"))).getpalette()[:12]).reshape(4, 3)
    np.testing.assert_array_equal(palette, [c["color"][:3] for c in table["classes"]])


def test_class_table_loads(demo):
    table = json.loads((demo / "classes.json").read_text())
    assert table["ignore_index"] == 255
    assert [c["id"] for c in table["classes"]] == [0, 1, 2, 3]
    assert [c["name"] for c in table["classes"]] == list(synth.CLASS_NAMES)
    classes = pytest.importorskip("segstudio.core.io.classes")
    loaded = classes.ClassTable.load(demo / "classes.json")
    assert loaded.num_classes == 4 and loaded.names == list(synth.CLASS_NAMES)


def test_weights_small_and_card_consistent(demo, card, model):
    assert (demo / "model" / "demo_unet.pth").stat().st_size <= 5 * MB
    assert card["architecture"] == "segstudio.CompactUNet"
    assert card["kind"] == "semantic" and card["channel_order"] == "RGB"
    assert len(card["classes"]) == card["arch_kwargs"]["num_classes"] == 4
    low, high = DEMO_MEAN_IOU_RANGE
    assert low <= card["demo_mean_iou"] <= high


def test_demo_model_mean_iou_in_range(demo, card, model):
    mean = torch.tensor(card["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(card["std"]).view(1, 3, 1, 1)
    confusion = np.zeros((4, 4), np.int64)
    for path in sorted((demo / "images").glob("*.png"))[:4]:
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        x = (torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255 - mean) / std
        with torch.no_grad():
            pred = model(x)[0].argmax(0).numpy()
        gt = np.asarray(Image.open(demo / "masks" / path.name)).astype(np.int64)
        np.add.at(confusion, (gt.ravel(), pred.ravel()), 1)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    present = union > 0
    mean_iou = float((tp[present] / union[present]).mean())
    low, high = DEMO_MEAN_IOU_RANGE
    assert low <= mean_iou <= high, mean_iou


@pytest.mark.parametrize("shape", [(97, 131), (1, 5), (64, 64)])
def test_compact_unet_any_size(shape):
    torch.manual_seed(0)
    net = CompactUNet(in_channels=3, num_classes=4, base=8, depth=3).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, *shape))
    assert out.shape == (2, 4, *shape)


def test_synth_is_deterministic_and_consistent():
    a, b = synth.generate(7, 96, 128), synth.generate(7, 96, 128)
    for field in ("image", "semantic", "instances"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.instance_classes == b.instance_classes
    assert not np.array_equal(a.image, synth.generate(8, 96, 128).image)

    assert a.image.shape == (96, 128, 3) and a.image.dtype == np.uint8
    assert a.instances.dtype == np.uint16 and a.semantic.dtype == np.uint8
    ids = np.unique(a.instances)
    assert list(ids[ids > 0]) == list(range(1, len(a.instance_classes) + 1))
    lut = np.zeros(len(a.instance_classes) + 1, np.uint8)
    for instance_id, class_id in a.instance_classes.items():
        lut[instance_id] = class_id
    np.testing.assert_array_equal(lut[a.instances], a.semantic)
