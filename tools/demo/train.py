"""Train the bundled demo model (a CompactUNet) on synthetic nuclei fields.

Usage (from the repository root, after ``python -m tools.demo.make_demo``)::

    .venv/bin/python -m tools.demo.train                 # the shipped model
    .venv/bin/python -m tools.demo.train --steps 200 --out /tmp/m   # a quick trial

The training set is generated here, from seeds ``synth.TRAIN_SEED_BASE + i``,
disjoint from the demo's ``synth.DEMO_SEEDS``; the demo images in
``resources/demo`` are only used for the final evaluation. Everything is seeded
(numpy, torch, the crop sampler) and runs on the CPU with two threads and
deterministic kernels, so a rerun on the same machine and library versions
reproduces the weights.

Writes ``<out>/demo_unet.pth`` (a plain ``state_dict``, loadable with
``torch.load(..., weights_only=True)``) and ``<out>/demo_unet.json`` (the model
card), then prints the per-class IoU and mean IoU on the demo images.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from segstudio.inference.unet import CompactUNet
from tools.demo import synth
from tools.demo.make_demo import DEFAULT_OUT as DEMO_DIR

ARCH_KWARGS = {"in_channels": 3, "num_classes": 4, "base": 16, "depth": 3}
FIELD_SIZE = 192   # training fields are generated at this size and cropped
CROP = 128


def build_pool(n_fields: int) -> tuple[np.ndarray, np.ndarray]:
    """Generate the training fields: images (N, H, W, 3) uint8 and masks (N, H, W) uint8."""
    samples = [synth.generate(synth.TRAIN_SEED_BASE + i, FIELD_SIZE, FIELD_SIZE) for i in range(n_fields)]
    return np.stack([s.image for s in samples]), np.stack([s.semantic for s in samples])


def sample_batch(rng: np.random.Generator, images: np.ndarray, masks: np.ndarray, batch: int):
    """Random crops with random flips and 90-degree rotations (the data has no preferred orientation)."""
    xs, ys = [], []
    for _ in range(batch):
        i = rng.integers(len(images))
        y0, x0 = rng.integers(0, FIELD_SIZE - CROP + 1, size=2)
        img = images[i, y0:y0 + CROP, x0:x0 + CROP]
        msk = masks[i, y0:y0 + CROP, x0:x0 + CROP]
        k = rng.integers(4)
        img, msk = np.rot90(img, k), np.rot90(msk, k)
        if rng.random() < 0.5:
            img, msk = img[:, ::-1], msk[:, ::-1]
        xs.append(img)
        ys.append(msk)
    return np.stack(xs), np.stack(ys)


def to_input(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> normalised float tensor (N, 3, H, W)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    return (x - torch.from_numpy(mean).view(1, 3, 1, 1)) / torch.from_numpy(std).view(1, 3, 1, 1)


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - mean soft Dice over the classes present in the batch; counters the class imbalance."""
    probs = logits.softmax(dim=1)
    onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).float()
    inter = (probs * onehot).sum(dim=(0, 2, 3))
    total = probs.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
    present = onehot.sum(dim=(0, 2, 3)) > 0
    dice = (2 * inter + 1.0) / (total + 1.0)
    return 1.0 - dice[present].mean()


def read_demo(demo_dir: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, RGB image, class-id mask) for every demo field."""
    from PIL import Image

    out = []
    for path in sorted((demo_dir / "images").glob("*.png")):
        image = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        mask = np.asarray(Image.open(demo_dir / "masks" / path.name))   # palette PNG -> indices
        out.append((path.stem, image, mask))
    return out


@torch.no_grad()
def predict(model: CompactUNet, image: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Class ids (H, W) for one RGB uint8 image."""
    return model(to_input(image[None], mean, std))[0].argmax(0).numpy().astype(np.uint8)


def iou_report(confusion: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-class IoU (NaN where a class is absent from both gt and prediction) and their mean."""
    tp = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - tp
    iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    return iou, float(np.nanmean(iou))


def evaluate(model: CompactUNet, demo_dir: Path, mean: np.ndarray, std: np.ndarray):
    """Pooled confusion matrix over the demo fields; returns (per-class IoU, mean IoU, per-image mIoU)."""
    n = ARCH_KWARGS["num_classes"]
    total = np.zeros((n, n), np.int64)
    per_image = {}
    model.eval()
    for name, image, gt in read_demo(demo_dir):
        pred = predict(model, image, mean, std)
        cm = np.bincount(gt.astype(np.int64).ravel() * n + pred.ravel(), minlength=n * n).reshape(n, n)
        per_image[name] = iou_report(cm)[1]
        total += cm
    iou, miou = iou_report(total)
    return iou, miou, per_image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the demo CompactUNet on synthetic nuclei.")
    parser.add_argument("--steps", type=int, default=900, help="optimiser steps (default 900)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--fields", type=int, default=240, help="training fields generated (default 240)")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--out", type=Path, default=DEMO_DIR / "model", help="where the weights and card go")
    parser.add_argument("--demo", type=Path, default=DEMO_DIR, help="demo dataset used for the final IoU")
    args = parser.parse_args(argv)

    torch.set_num_threads(2)
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    cv2.setNumThreads(1)
    rng = np.random.default_rng(12345)
    start = time.perf_counter()

    images, masks = build_pool(args.fields)
    # Normalisation statistics of the training set, in 0-1 units, rounded so the card reads well.
    pixels = images.reshape(-1, 3).astype(np.float64) / 255.0
    mean = np.round(pixels.mean(0), 4).astype(np.float32)
    std = np.round(pixels.std(0), 4).astype(np.float32)
    class_share = np.bincount(masks.ravel(), minlength=4) / masks.size
    print(f"generated {len(images)} training fields in {time.perf_counter() - start:.0f}s; "
          f"class pixel share {np.round(class_share, 3).tolist()}")

    model = CompactUNet(**ARCH_KWARGS)
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=args.lr, total_steps=args.steps,
                                                   pct_start=0.1)
    model.train()
    for step in range(1, args.steps + 1):
        x, y = sample_batch(rng, images, masks, args.batch)
        logits = model(to_input(x, mean, std))
        target = torch.from_numpy(np.ascontiguousarray(y)).long()
        loss = F.cross_entropy(logits, target) + 0.5 * soft_dice_loss(logits, target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % 50 == 0 or step == args.steps:
            print(f"step {step}/{args.steps}  loss {loss.item():.4f}  {time.perf_counter() - start:.0f}s",
                  flush=True)
    train_seconds = time.perf_counter() - start

    iou, miou, per_image = evaluate(model, args.demo, mean, std)
    print(f"training took {train_seconds / 60:.1f} min")
    for name, value in zip(synth.CLASS_NAMES, iou):
        print(f"  IoU {name:18s} {value:.4f}")
    print("  per image: " + ", ".join(f"{k} {v:.3f}" for k, v in per_image.items()))
    print(f"demo mean IoU {miou:.4f}")

    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out / "demo_unet.pth")
    card = {
        "name": "demo",
        "architecture": "segstudio.CompactUNet",
        "arch_kwargs": ARCH_KWARGS,
        "classes": [{"name": n, "color": list(c)} for n, c in zip(synth.CLASS_NAMES, synth.CLASS_COLORS)],
        "mean": [round(float(v), 4) for v in mean],
        "std": [round(float(v), 4) for v in std],
        "channel_order": "RGB",
        "input_size": None,
        "kind": "semantic",
        "trained_by": "tools/demo/train.py",
        "training": {"steps": args.steps, "batch": args.batch, "crop": CROP, "fields": args.fields,
                     "field_size": FIELD_SIZE, "lr": args.lr, "loss": "cross-entropy + 0.5 soft Dice",
                     "minutes": round(train_seconds / 60, 1)},
        "demo_mean_iou": round(miou, 4),
        "demo_class_iou": {n: round(float(v), 4) for n, v in zip(synth.CLASS_NAMES, iou)},
    }
    (args.out / "demo_unet.json").write_text(json.dumps(card, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
