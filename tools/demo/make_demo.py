"""Write the bundled demo dataset to ``resources/demo/``.

Usage (from the repository root)::

    .venv/bin/python -m tools.demo.make_demo            # or: python -m tools.demo.synth
    .venv/bin/python -m tools.demo.make_demo --out /tmp/demo

Layout written::

    images/<name>.png      RGB, 8-bit
    masks/<name>.png       palette PNG of class ids, the class colours as palette
    instances/<name>.png   16-bit single-channel instance ids (0 = none)
    classes.json           the class table (ClassTable JSON)

The demo fields use ``synth.DEMO_SEEDS``, a seed range the training set never
touches. The output is byte-for-byte reproducible for a given OpenCV/Pillow
build (PNG encoders are deterministic).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from tools.demo import synth

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "resources" / "demo"

# (height, width) per demo field, cycled: a mix of square and landscape/portrait
# fields so the app's fit-to-window and tiling paths see more than one shape.
DEMO_SIZES = ((384, 512), (480, 480), (512, 448), (448, 448), (512, 512))
IGNORE_INDEX = 255


def demo_names() -> list[str]:
    """File stems of the demo fields, in seed order."""
    return [f"cells_{i:02d}" for i in range(len(synth.DEMO_SEEDS))]


def class_table_json() -> dict:
    """The demo class table in the ``ClassTable.to_json`` layout."""
    return {
        "name": "demo-nuclei",
        "ignore_index": IGNORE_INDEX,
        "classes": [
            {"id": i, "name": name, "color": list(color)}
            for i, (name, color) in enumerate(zip(synth.CLASS_NAMES, synth.CLASS_COLORS))
        ],
    }


def format_class_table(table: dict) -> str:
    """JSON text with one class per line, easier to read and diff than ``indent=2``."""
    rows = ",\n".join("    " + json.dumps(c) for c in table["classes"])
    return (f'{{\n  "name": {json.dumps(table["name"])},\n  "ignore_index": {table["ignore_index"]},\n'
            f'  "classes": [\n{rows}\n  ]\n}}\n')


def write_palette_png(path: Path, mask: np.ndarray) -> None:
    """Save class ids as a palette PNG whose palette holds the class colours."""
    palette = np.zeros((256, 3), np.uint8)
    palette[: len(synth.CLASS_COLORS)] = [c[:3] for c in synth.CLASS_COLORS]
    palette[IGNORE_INDEX] = (255, 255, 255)
    img = Image.fromarray(mask.astype(np.uint8), mode="P")
    img.putpalette(palette.ravel().tolist())
    img.save(path, optimize=True)


def write_field(out: Path, name: str, sample: synth.SynthSample) -> None:
    """Write one field's image, semantic mask and instance mask."""
    png = [cv2.IMWRITE_PNG_COMPRESSION, 9]
    cv2.imwrite(str(out / "images" / f"{name}.png"), cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR), png)
    write_palette_png(out / "masks" / f"{name}.png", sample.semantic)
    cv2.imwrite(str(out / "instances" / f"{name}.png"), sample.instances.astype(np.uint16), png)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="dataset folder (default: resources/demo)")
    args = parser.parse_args(argv)
    # One OpenCV thread keeps generation cheap on a shared machine; results do not depend on it.
    cv2.setNumThreads(1)
    for sub in ("images", "masks", "instances"):
        (args.out / sub).mkdir(parents=True, exist_ok=True)
    for i, (name, seed) in enumerate(zip(demo_names(), synth.DEMO_SEEDS)):
        height, width = DEMO_SIZES[i % len(DEMO_SIZES)]
        sample = synth.generate(seed, height, width)
        write_field(args.out, name, sample)
        counts = np.bincount(sample.semantic.ravel(), minlength=len(synth.CLASS_NAMES))
        print(f"{name}: seed {seed}, {width}x{height}, {len(sample.instance_classes)} instances, "
              f"class pixels {counts.tolist()}")
    (args.out / "classes.json").write_text(format_class_table(class_table_json()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
