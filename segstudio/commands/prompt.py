"""``segstudio prompt``: masks from clicks and boxes, for scripting and batches.

One image::

    segstudio prompt --model grabcut --image cell.png --point 120,80 --point 140,90,- --out mask.png

writes the best-scoring mask as a 0/1 PNG. A batch::

    segstudio prompt --model sam:sam_vit_b_01ec64.pth --prompts prompts.json --out DIR [--dataset PATH]

reads a JSON list of ``{"image", "points": [[x, y, 1|0], ...], "box": [x0, y0, x1, y1], "class"}`` and
writes one class mask per image (background 0, each prompt's mask painted with its class, in file
order). With ``--dataset`` the images are the dataset's (by name or path) and the masks are written in
its format (palette PNG, Cityscapes ids, COCO JSON) under ``DIR``; without, as palette PNGs named like
the images. Image paths are relative to the prompts file. Each image is encoded once.

Bad input exits 2 with one line on stderr; an image that cannot be read or segmented in a batch is
reported and skipped (exit 1); Ctrl+C exits 130. The model spec is ``grabcut``, ``sam:PATH`` or
``sam2:PATH[:CONFIG]``, or a released model by name (``sam:vit_b``, ``sam2:tiny`` …) looked up in
``--weights-dir``; the SAM family needs ``pip install segstudio[sam]``. Nothing is downloaded.
"""
from __future__ import annotations

import argparse
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np

from segstudio.commands._common import EXIT_CANCELLED, EXIT_SOME_FAILED, print_error, say
from segstudio.commands._progress import Progress
from segstudio.core.errors import SegStudioError

PROG = "segstudio prompt"


def _point(text: str) -> tuple[float, float, int]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError(f"{text!r}: a point is X,Y or X,Y,+ / X,Y,-")
    sign = parts[2] if len(parts) == 3 else "+"
    if sign not in ("+", "-", "1", "0"):
        raise argparse.ArgumentTypeError(f"{text!r}: the third field is + (object) or - (not object)")
    try:
        return float(parts[0]), float(parts[1]), int(sign in ("+", "1"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: X and Y must be numbers") from None


def _box(text: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"{text!r}: a box is X0,Y0,X1,Y1")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``segstudio prompt``."""
    parser.add_argument("--model", default="grabcut", metavar="SPEC",
                        help="grabcut (default, no weights), sam:PATH or sam2:PATH[:CONFIG]")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", metavar="PATH", help="the image to segment (with --point / --box)")
    source.add_argument("--prompts", metavar="JSON", help="a batch: list of {image, points, box, class}")
    parser.add_argument("--point", type=_point, action="append", default=[], metavar="X,Y[,+|-]",
                        help="a click in pixels; + (default) object, - not object; repeatable")
    parser.add_argument("--box", type=_box, metavar="X0,Y0,X1,Y1", help="a box around the object")
    parser.add_argument("--out", required=True, metavar="PATH",
                        help="mask.png (with --image) or an output folder (with --prompts)")
    parser.add_argument("--dataset", metavar="PATH", help="with --prompts: the dataset the images belong to "
                        "(masks written in its format)")
    parser.add_argument("--classes", metavar="FILE", help="class table for the palette (classes.json or names)")
    parser.add_argument("--weights-dir", metavar="DIR", help="folder holding the released weights files, for "
                        "the short specs sam:vit_b|vit_l|vit_h and sam2:tiny|small|base_plus|large")
    parser.add_argument("--device", default="cpu", choices=["auto", "cuda", "mps", "cpu"],
                        help="device for the SAM family (default: cpu)")


def run(args: argparse.Namespace) -> int:
    """Segment; return the exit code (0, 1 some images failed, 2 bad input, 130 interrupted)."""
    from segstudio.inference.prompting.registry import open_backend

    if args.image is not None and not args.point and args.box is None:
        return print_error(PROG, "--image needs at least one --point or a --box")
    if args.prompts is not None and (args.point or args.box is not None):
        return print_error(PROG, "--point and --box go with --image; a --prompts file holds its own")
    try:
        backend = open_backend(args.model, device=_device(args.device), weights_dir=args.weights_dir)
        if args.image is not None:
            return _single(args, backend)
        return _batch(args, backend)
    except SegStudioError as exc:
        return print_error(PROG, str(exc))
    except OSError as exc:
        return print_error(PROG, f"{exc.filename or args.out}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        say(PROG, "cancelled")
        return EXIT_CANCELLED


def _device(requested: str) -> str:
    if requested != "auto":
        return requested
    from segstudio.inference.devices import select_device   # noqa: PLC0415 - torch only when asked
    return str(select_device("auto"))


def _single(args, backend) -> int:
    from segstudio.core.io.images import read_image
    from segstudio.core.prompting.types import Prompt

    image = read_image(args.image)
    proposal = backend.predict(backend.set_image(image), Prompt.of(args.point, box=args.box))
    _write_binary(Path(args.out), proposal.mask())
    return 0


def _write_binary(path: Path, mask: np.ndarray) -> None:
    import cv2

    from segstudio.core.io.masks import atomic_write_bytes

    ok, data = cv2.imencode(".png", mask.astype(np.uint8))
    if not ok:
        raise OSError(f"cannot encode {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data.tobytes())


def _batch(args, backend) -> int:
    from segstudio.core.io.images import read_image
    from segstudio.core.prompting.types import Prompt
    from segstudio.core.prompting.batch import read_prompts

    jobs = read_prompts(args.prompts)
    dataset = _open_dataset(args) if args.dataset else None
    table = dataset.class_table if dataset is not None else _class_table(args.classes)
    by_image: OrderedDict[str, list] = OrderedDict()
    for job in jobs:
        by_image.setdefault(job.image, []).append(job)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bar, failures = Progress(sys.stderr, PROG), []
    for done, (name, items) in enumerate(by_image.items(), start=1):
        try:
            sample = _sample(dataset, name, Path(args.prompts).parent) if dataset is not None else None
            image = read_image(sample.image_path if sample is not None else _resolve(name, args.prompts))
            embedding = backend.set_image(image)
            labels = np.zeros(image.shape[:2], np.uint16 if table.num_classes > 255 else np.uint8)
            for item in items:
                if not 0 <= item.class_id < table.num_classes:
                    raise SegStudioError(args.prompts, f"{name}: class {item.class_id} is not in the class table "
                                         f"(0..{table.num_classes - 1})")
                mask = backend.predict(embedding, Prompt.of(item.points, box=item.box)).mask()
                labels[mask] = item.class_id
            if dataset is not None:
                from segstudio.core.io.saving import save_ground_truth
                save_ground_truth(dataset, sample, labels, out_dir=out)
            else:
                from segstudio.core.io.masks import write_palette_png
                write_palette_png(out / (Path(name).stem + ".png"), labels, table)
        except (SegStudioError, OSError) as exc:
            failures.append(str(exc))
        bar(done, len(by_image))
    bar.close()
    for message in failures:
        print_error(PROG, message)
    if failures:
        say(PROG, f"{len(failures)} of {len(by_image)} images failed")
        return EXIT_SOME_FAILED
    return 0


def _resolve(name: str, prompts_file: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else Path(prompts_file).parent / path


def _open_dataset(args):
    from segstudio.core.io.datasets import open_dataset

    return open_dataset(args.dataset, class_table=args.classes)


def _sample(dataset, name: str, base: Path):
    """The dataset's sample for ``name``: its sample name, or its image path."""
    try:
        return dataset[dataset.index_of(name)]
    except KeyError:
        pass
    wanted = {Path(name).resolve(), (base / name).resolve()}
    for sample in dataset:
        if Path(sample.image_path).resolve() in wanted or Path(sample.image_path).stem == Path(name).stem:
            return sample
    raise SegStudioError(name, f"not an image of the dataset {dataset.root}")


def _class_table(classes: str | None):
    from segstudio.core.io.classes import ClassTable

    if classes is None:
        return ClassTable.generic(255)
    if classes.lower().endswith(".txt"):
        return ClassTable.from_names_txt(classes)
    return ClassTable.load(classes)
