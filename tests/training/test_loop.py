"""The training loop: a tiny model overfits two images; same seed, same figures; splits never overlap."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from segstudio.core.io.datasets import open_dataset
from segstudio.training.data import load_images
from segstudio.training.labels import select_labelled, split_names
from segstudio.training.loop import TrainConfig, Trainer, validate
from segstudio.training.losses import LossSpec
from segstudio.training.model import build_trainable
from segstudio.training.run import TrainOptions, run_training
from tests.training.helpers import make_dataset, miou_numpy


@pytest.fixture
def tiny_data(tmp_path):
    return make_dataset(tmp_path / "data", count=6)


def test_tiny_model_overfits_two_images(tiny_data):
    torch.manual_seed(0)
    dataset = open_dataset(tiny_data)
    chosen = select_labelled(dataset)[:2]
    images = load_images(chosen)
    model = build_trainable("new:segstudio.CompactUNet", 3, {"base": 8, "depth": 2})
    config = TrainConfig(epochs=1, lr=1e-2, batch_size=4, crop=32, steps_per_epoch=150,
                         loss=LossSpec("ce+dice"), patience=5)
    mean, std = (0.2, 0.2, 0.1), (0.3, 0.3, 0.2)
    held_out = load_images(select_labelled(dataset)[2:3])
    trainer = Trainer(model, images, held_out, config, torch.device("cpu"), mean=mean, std=std,
                      save_best=lambda *a: None, checkpoint_path=tiny_data / "ck.pt")
    trainer.run()
    module = trainer.module.eval()
    for item in images:
        with torch.no_grad():
            x = (item.image.float()[None] * item.scale - torch.tensor(mean).view(1, 3, 1, 1)) \
                / torch.tensor(std).view(1, 3, 1, 1)
            pred = module(x).argmax(1)[0].numpy()
        assert miou_numpy(item.labels.numpy(), pred, 3) >= 0.95
    # The loop's own validation agrees with the independent formula on the same images.
    confusion = validate(module, images, mean, std, 3, 255, torch.device("cpu"))
    preds = []
    for item in images:
        with torch.no_grad():
            x = (item.image.float()[None] * item.scale - torch.tensor(mean).view(1, 3, 1, 1)) \
                / torch.tensor(std).view(1, 3, 1, 1)
            preds.append(module(x).argmax(1)[0].numpy())
    gt = np.concatenate([i.labels.numpy().ravel() for i in images])
    assert confusion.mean_iou() == pytest.approx(miou_numpy(gt, np.concatenate([p.ravel() for p in preds]), 3))


def _options(data, out, **kw):
    base = dict(dataset=str(data), model="new:segstudio.CompactUNet", out=str(out), epochs=2, steps_per_epoch=4,
                crop=32, batch_size=2, device="cpu", seed=7, threads=1, arch_kwargs={"base": 8, "depth": 2})
    base.update(kw)
    return TrainOptions(**base)


def test_two_runs_with_the_same_seed_give_the_same_validation_figures(tiny_data, tmp_path):
    events_a, events_b = [], []
    run_training(_options(tiny_data, tmp_path / "a.pth"), events_a.append)
    run_training(_options(tiny_data, tmp_path / "b.pth"), events_b.append)
    epochs_a = [(e["val_miou"], e["val_class_iou"], e["train_loss"]) for e in events_a if e["event"] == "epoch"]
    epochs_b = [(e["val_miou"], e["val_class_iou"], e["train_loss"]) for e in events_b if e["event"] == "epoch"]
    assert len(epochs_a) == 2 and epochs_a == epochs_b
    a = torch.load(tmp_path / "a.pth", weights_only=True)
    b = torch.load(tmp_path / "b.pth", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_split_is_disjoint_seeded_and_checked():
    names = [f"n{i}" for i in range(10)]
    train, val = split_names(names, 0.3, seed=1)
    assert len(val) == 3 and not set(train) & set(val) and set(train) | set(val) == set(names)
    assert split_names(names, 0.3, seed=1) == (train, val)
    train2, val2 = split_names(names, val_names=["n2", "n5"])
    assert val2 == ["n2", "n5"] and "n2" not in train2
    with pytest.raises(ValueError, match="not among"):
        split_names(names, val_names=["zz"])
    with pytest.raises(ValueError, match="at least 2"):
        split_names(["only"], 0.2)


def test_trainer_refuses_overlapping_images(tiny_data):
    images = load_images(select_labelled(open_dataset(tiny_data))[:2])
    model = build_trainable("new:segstudio.CompactUNet", 3, {"base": 8, "depth": 2})
    with pytest.raises(AssertionError, match="overlap"):
        Trainer(model, images, images[:1], TrainConfig(crop=32), torch.device("cpu"), mean=(0, 0, 0),
                std=(1, 1, 1), save_best=lambda *a: None, checkpoint_path=tiny_data / "x.pt")


def test_augmentation_is_reproducible_and_keeps_labels(tiny_data):
    from segstudio.training.data import CropSampler

    images = load_images(select_labelled(open_dataset(tiny_data))[:3])
    sampler = CropSampler(images, 32, (0, 0, 0), (1, 1, 1))
    torch.manual_seed(5)
    x1, y1, _, _ = sampler.batch(4)
    torch.manual_seed(5)
    x2, y2, _, _ = sampler.batch(4)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert x1.shape == (4, 3, 32, 32) and y1.shape == (4, 32, 32)
    # nearest-neighbour resampling: only the ids that exist come out
    assert set(torch.unique(y1).tolist()) <= {0, 1, 2}
    # image and mask move together: red pixels (disc colour) are labelled disc
    assert x1.dtype == torch.float32 and 0.0 <= float(x1.min()) and float(x1.max()) <= 1.0   # 0-1 units
    red = (x1[:, 0] > 0.6) & (x1[:, 1] < 0.4)
    assert red.any() and (y1[red] == 1).float().mean() > 0.9


def test_sixteen_bit_images_get_intensity_scaling_not_colour_jitter():
    from torchvision import tv_tensors

    from segstudio.training.augment import IntensityScale, augmentation

    transform = augmentation(40, 40, 40, eight_bit=False, scale=1 / 65535)
    assert any(isinstance(t, IntensityScale) for t in transform.transforms)
    image = torch.full((3, 40, 40), 30000.0)
    mask = torch.zeros((40, 40), dtype=torch.int64)
    mask[:, 20:] = 255                               # the ignore index survives the resampling
    torch.manual_seed(1)
    out, out_mask = transform(tv_tensors.Image(image), tv_tensors.Mask(mask))
    factor = float(out.mean()) / (30000 / 65535)
    assert 0.8 - 1e-4 <= factor <= 1.25 + 1e-4 and float(out.std()) < 1e-5
    assert set(torch.unique(out_mask).tolist()) <= {0, 255}


def test_precision_follows_the_device_and_the_cpus_native_bfloat16(monkeypatch):
    from segstudio.training import loop

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert loop.resolve_precision("auto", cuda) == "fp16"
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": True, "avx512_bf16": False})
    assert loop.resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": False, "avx512_bf16": True})
    assert loop.resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx2": True})
    assert loop.resolve_precision("auto", cpu) == "fp32"
    assert loop.resolve_precision("auto", torch.device("mps")) == "fp32"
    assert loop.resolve_precision("bf16", cpu) == "bf16"          # asked for: honoured, even emulated
    assert loop.resolve_precision("fp32", cuda) == "fp32"
    with pytest.raises(ValueError, match="needs a CUDA device"):
        loop.resolve_precision("fp16", cpu)
    with pytest.raises(ValueError, match="unknown precision"):
        loop.resolve_precision("fp8", cpu)


@pytest.mark.parametrize("precision,trained_in", [("bf16", torch.bfloat16), ("fp32", torch.float32)])
def test_training_steps_run_in_the_precision_and_validation_in_float32(tiny_data, precision, trained_in):
    dataset = open_dataset(tiny_data)
    images = load_images(select_labelled(dataset)[:3])
    torch.manual_seed(0)
    model = build_trainable("new:segstudio.CompactUNet", 3, {"base": 8, "depth": 2})
    config = TrainConfig(epochs=1, batch_size=2, crop=32, steps_per_epoch=2, precision=precision)
    trainer = Trainer(model, images[:2], images[2:], config, torch.device("cpu"), mean=(0.2, 0.2, 0.1),
                      std=(0.3, 0.3, 0.2), save_best=lambda *a: None, checkpoint_path=tiny_data / "ck.pt")
    seen = []
    first_conv = next(m for m in trainer.module.modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    with trainer.prefetching():
        loss = trainer.train_step()
    assert seen == [trained_in] and np.isfinite(loss)
    assert all(p.dtype == torch.float32 for p in trainer.module.parameters())     # float32 master weights
    assert first_conv.weight.is_contiguous(memory_format=torch.channels_last)
    seen.clear()
    trainer.validate()
    assert seen == [torch.float32]


def test_the_card_records_the_precision_and_the_weights_are_plain(tiny_data, tmp_path):
    run_training(_options(tiny_data, tmp_path / "m.pth", precision="bf16", epochs=1), lambda e: None)
    import json

    lineage = json.loads((tmp_path / "m.json").read_text())["lineage"]
    assert lineage["precision"] == "bf16" and lineage["mixed_precision"] is True
    state = torch.load(tmp_path / "m.pth", weights_only=True)
    assert all(t.is_contiguous() for t in state.values())
