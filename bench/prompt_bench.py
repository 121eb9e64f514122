"""Click-to-segment benchmark (run by hand): ``python bench/prompt_bench.py [--quick] [--parts ...] [--sam PATH]``.

Every figure is printed next to a baseline measured in the same run:

* **noc** — clicks to IoU 0.85 / 0.9 (NoC@85, NoC@90) on the bundled demo's nuclei (instances of class
  ``nucleus``, at least 100 px) with the standard click simulator (``core.prompting.clicks``: first
  click at the interior point farthest from the border, then the centre of the largest error region,
  at most 20 clicks; a run that never gets there counts 20). segstudio's offline default (seeded
  GrabCut, prior from the demo model's prediction, each click refining the previous mask) against
  plain ``cv2.grabCut`` (60-px box around the positive clicks, clicks as hard seeds). Target: NoC@85
  <= 0.8x plain. ``--sam PATH`` runs a SAM / SAM 2 checkpoint through the same harness.
* **decoder** — per click on a cached embedding: the decoder plus drawing the proposal's outline
  (the overlay's items), for SAM ViT-B and SAM 2.1 Hiera-tiny built at their real sizes with random
  weights, CPU, image 1024x768, clicks as the Prompt tool sends them (a first click asks for three
  candidates; each further click feeds the shown candidate's logits back and asks for one).
  Target <= 50 ms (ratio printed). Baseline in the same run: the same backend with the packages'
  own ``predict_masks`` (``SamPredictor`` / ``SAM2ImagePredictor.predict`` unchanged) on the same
  weights, embedding and clicks, with the number of mask pixels on which the two disagree.
* **gui** — the longest pause of the GUI event loop (5 ms heartbeat) while the Prompt tool's first
  click waits for SAM ViT-B's image embedding on the inference lane. Target <= 50 ms. Baseline: the
  encoder's own duration in the same run (how long the GUI would have frozen had it waited).
* **encoder** — ``set_image`` on a 1024x1024 image, CPU (and CUDA when there is one), SAM ViT-B and
  SAM 2.1 tiny, against one decoder click (how many clicks an encoding is worth).

``--quick``: 4 demo images x 5 nuclei, 5 decoder clicks, and the GUI part with a tiny SAM.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from segstudio.core.prompting.clicks import clicks_to_iou  # noqa: E402
from segstudio.core.prompting.grabcut import GrabCutBackend, plain_grabcut  # noqa: E402
from segstudio.core.prompting.types import Prompt, prior_from_prediction  # noqa: E402

BUDGET_MS = 50.0
MAX_CLICKS = 20


def demo_nuclei(n_images: int, per_image: int, min_px: int = 100):
    """``(image, prior, [instance masks])`` per demo image; the prior from the demo model."""
    from segstudio.core.io.images import read_image
    from segstudio.core.io.masks import read_instance_mask, read_semantic_mask
    from segstudio.inference.registry import resolve_model
    from segstudio.inference.runner import Runner
    from segstudio.resources import resource_path

    demo = resource_path("demo")
    runner = Runner(resolve_model("demo"), device="cpu")
    rng = np.random.default_rng(0)
    names = sorted(p.stem for p in (demo / "images").glob("*.png"))[:n_images]
    out = []
    for name in names:
        image = read_image(demo / "images" / f"{name}.png")
        semantic = read_semantic_mask(demo / "masks" / f"{name}.png")
        ids = read_instance_mask(demo / "instances" / f"{name}.png").ids
        nuclei = [k for k in np.unique(ids[ids > 0])
                  if (ids == k).sum() >= min_px and np.bincount(semantic[ids == k]).argmax() == 1]
        chosen = rng.choice(nuclei, min(per_image, len(nuclei)), replace=False) if per_image else nuclei
        prediction = runner.predict(image)
        out.append((image, prior_from_prediction(prediction.mask, prediction.confidence),
                    [ids == k for k in chosen]))
    return out


def noc(data, segment_factory) -> tuple[float, float, int]:
    runs = []
    for image, prior, objects in data:
        segment = segment_factory(image, prior)
        for gt in objects:
            run = clicks_to_iou(gt, segment, MAX_CLICKS, 0.9)
            runs.append((run.noc(0.85, MAX_CLICKS), run.noc(0.9, MAX_CLICKS)))
    values = np.array(runs, float)
    return float(values[:, 0].mean()), float(values[:, 1].mean()), len(runs)


def part_noc(args) -> None:
    n_images, per_image = (4, 5) if args.quick else (20, args.objects)
    data = demo_nuclei(n_images, per_image)

    def plain(image, _prior):
        return lambda prompt, _previous: plain_grabcut(image, prompt)

    def seeded(image, prior):
        backend = GrabCutBackend()
        embedding = backend.set_image(image)
        state = {}

        def segment(prompt, previous):
            mask_input = state.get("logits") if previous is not None else None
            proposal = backend.predict(embedding, Prompt(prompt.points, prompt.labels, None, mask_input,
                                                         True, prior))
            state["logits"] = proposal.logits
            return proposal.mask()
        return segment

    t0 = time.perf_counter()
    base85, base90, count = noc(data, plain)
    t1 = time.perf_counter()
    ours85, ours90, _ = noc(data, seeded)
    t2 = time.perf_counter()
    print(f"[noc] {count} demo nuclei, max {MAX_CLICKS} clicks")
    print(f"  plain cv2.grabCut      NoC@85 {base85:5.2f}  NoC@90 {base90:5.2f}  ({(t1 - t0) / count:.2f} s/object)")
    print(f"  segstudio GrabCut      NoC@85 {ours85:5.2f}  NoC@90 {ours90:5.2f}  ({(t2 - t1) / count:.2f} s/object)")
    print(f"  ratio vs plain         NoC@85 {ours85 / base85:5.2f}x NoC@90 {ours90 / base90:5.2f}x   "
          f"(target NoC@85 <= 0.80x: {'PASS' if ours85 <= 0.8 * base85 else 'FAIL'})")
    if args.sam:
        from segstudio.inference.prompting.registry import open_backend

        backend = open_backend(args.sam)

        def sam(image, _prior):
            embedding = backend.set_image(image)
            state = {}

            def segment(prompt, previous):
                logits = state.get("logits")
                mask_input = None if previous is None or logits is None else logits[state["best"]][None]
                proposal = backend.predict(embedding, Prompt(prompt.points, prompt.labels, None, mask_input,
                                                             len(prompt.points) == 1))
                state["logits"], state["best"] = proposal.logits, proposal.best
                return proposal.mask()
            return segment

        s85, s90, _ = noc(data, sam)
        print(f"  {args.sam:<22} NoC@85 {s85:5.2f}  NoC@90 {s90:5.2f}  ratio vs plain {s85 / base85:5.2f}x")


def real_size_backends(directory: Path):
    """SAM ViT-B and SAM 2.1 Hiera-tiny at their real sizes, random weights, saved and reopened through
    the registry (the path users take)."""
    import torch
    from segment_anything.build_sam import build_sam_vit_b

    from segstudio.inference.prompting.registry import open_backend
    from segstudio.inference.prompting.sam2 import load_sam2_config

    torch.manual_seed(0)
    sam_path = directory / "sam_vit_b_random.pth"
    torch.save(build_sam_vit_b(None).state_dict(), sam_path)
    from hydra.utils import instantiate

    model = instantiate(load_sam2_config("configs/sam2.1/sam2.1_hiera_t.yaml").model, _recursive_=True)
    sam2_path = directory / "sam2.1_hiera_tiny_random.pt"
    torch.save({"model": model.state_dict()}, sam2_path)
    del model
    return {"SAM ViT-B": open_backend(f"sam:{sam_path}"), "SAM 2.1 tiny": open_backend(f"sam2:{sam2_path}")}


def fake_embedding(name: str, backend, shape):
    """A cached embedding of the right shapes (the decoder's cost does not depend on the values)."""
    import torch

    from segstudio.core.prompting.types import Embedding

    backend.load()
    h, w = shape
    scale = 1024 / max(h, w)
    if name.startswith("SAM ViT"):
        state = {"features": torch.randn(1, 256, 64, 64), "original_size": (h, w),
                 "input_size": (round(h * scale), round(w * scale))}
    else:
        state = {"features": {"image_embed": torch.randn(1, 256, 64, 64),
                              "high_res_feats": [torch.randn(1, 32, 256, 256), torch.randn(1, 64, 128, 128)]},
                 "orig_hw": [(h, w)]}
    return Embedding(shape, state, 0)


def upstream_backend(name: str, backend):
    """A twin of ``backend`` on the same weights whose decoder is the package's own method (segstudio's
    fast path removed): the same wrapper around the package's predictor, the baseline decoder inside."""
    from segstudio.inference.prompting.registry import open_backend

    twin = open_backend(backend.spec)
    twin.load()
    model = twin.backend._decoder.model
    decoder = model.mask_decoder if name.startswith("SAM ViT") else model.sam_mask_decoder
    del decoder.predict_masks                     # the instance attribute: back to the class's method
    return twin


def part_decoder_and_encoder(args, backends) -> None:
    from PySide6.QtWidgets import QApplication, QGraphicsScene

    from segstudio.ui.prompt_tool import ProposalOverlay

    QApplication.instance() or QApplication([])

    class Canvas:                     # what the overlay needs from the canvas: a scene and the zoom
        def __init__(self):
            self._scene = QGraphicsScene()

        def scene(self):
            return self._scene

        def zoom(self):
            return 1.0

    overlay = ProposalOverlay(Canvas())
    clicks = 5 if args.quick else 30
    rng = np.random.default_rng(0)
    image = (rng.random((768, 1024, 3)) * 255).astype(np.uint8)
    square = (rng.random((1024, 1024, 3)) * 255).astype(np.uint8)
    print("[decoder] per click on a cached embedding, CPU, 1024x768: decoder + proposal drawn (overlay items); "
          "clicks as the Prompt tool sends them (a new object every third click, refinements in between)")
    per_click = {}
    for name, backend in backends.items():
        embedding = fake_embedding(name, backend, image.shape[:2])
        upstream = upstream_backend(name, backend)
        prompt = Prompt.of([(500, 380, 1)])
        backend.predict(embedding, prompt)                       # warm-up
        upstream.predict(embedding, prompt)
        decode, draw, theirs = [], [], []
        differing = pixels = 0
        proposal = None
        for i in range(clicks):
            # as the Prompt tool asks: every third click starts a new object (one point, three
            # candidates); the others add a point and feed the shown candidate's logits back
            x, y = int(rng.integers(0, 1024)), int(rng.integers(0, 768))
            if i % 3 == 0:
                prompt = Prompt.of([(x, y, 1)])
            else:
                more = prompt.with_click(x, y, bool(i % 2))
                prompt = Prompt(more.points, more.labels, None, proposal.logits[proposal.best][None], False)
            t0 = time.perf_counter()
            proposal = backend.predict(embedding, prompt)
            t1 = time.perf_counter()
            overlay.show(prompt, proposal.mask())
            t2 = time.perf_counter()
            masks = upstream.predict(embedding, prompt).masks
            t3 = time.perf_counter()
            decode.append((t1 - t0) * 1000)
            draw.append((t2 - t1) * 1000)
            theirs.append((t3 - t2) * 1000)
            differing += int(np.count_nonzero(masks != proposal.masks))
            pixels += masks.size
        total = [a + b for a, b in zip(decode, draw)]
        per_click[name] = statistics.median(total)
        firsts = [total[i] for i in range(0, clicks, 3)]
        refining = [t for i, t in enumerate(total) if i % 3]
        print(f"  {name:<13} median {per_click[name]:6.1f} ms (first clicks {statistics.median(firsts):5.1f}, "
              f"refining {statistics.median(refining):5.1f}; decoder {statistics.median(decode):6.1f}, drawn "
              f"{statistics.median(draw):5.1f})  p95 {sorted(total)[int(0.95 * (len(total) - 1))]:6.1f} ms"
              f"  = {per_click[name] / BUDGET_MS:4.2f}x the {BUDGET_MS:.0f} ms budget")
        upstream_ms = statistics.median(theirs)
        print(f"  {'':<13} with the package's decoder instead {upstream_ms:6.1f} ms: ours = "
              f"{statistics.median(decode) / upstream_ms:4.2f}x; masks differ on {differing} of {pixels:,} pixels")
    if args.quick:
        return
    import torch

    print("[encoder] set_image on 1024x1024")
    for name, backend in backends.items():
        t0 = time.perf_counter()
        backend.set_image(square)
        cpu = time.perf_counter() - t0
        line = f"  {name:<13} CPU {cpu:6.2f} s = {cpu * 1000 / per_click[name]:6.0f} decoder clicks"
        if torch.cuda.is_available():
            backend = getattr(backend, "backend", backend)      # the model behind the deferred loader
            backend.device = "cuda"
            backend._encoder = backend._decoder = None
            backend.set_image(square)                 # load + warm-up
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            backend.set_image(square)
            torch.cuda.synchronize()
            line += f"   CUDA {time.perf_counter() - t0:6.3f} s"
        print(line)


def part_gui(args, directory: Path) -> None:
    """The Prompt tool's first click while the embedding is computed: the longest GUI pause."""
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtCore
    from PySide6.QtCore import QEventLoop, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from bench.bench_measure import Heartbeat
    from segstudio.inference.prompting.registry import open_backend
    from segstudio.ui.compose import build_main_window

    app = QApplication.instance() or QApplication([])
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(directory / "settings"))
    os.environ["SEGSTUDIO_SETTINGS_DIR"] = str(directory / "settings")
    if args.quick:
        sys.path.insert(0, str(REPO))
        from tests.inference.prompt_models import tiny_sam
        weights, _ = tiny_sam(directory)
        label = "tiny SAM"
    else:
        weights, label = directory / "sam_vit_b_random.pth", "SAM ViT-B"
    window = build_main_window()
    window.resize(1200, 800)
    window.show()
    window.finish_startup(None)
    loop = QEventLoop()

    def wait(condition, ms=600_000):
        timer = QTimer(interval=10)
        timer.timeout.connect(lambda: condition() and loop.quit())
        timer.start()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()
        timer.stop()

    wait(lambda: window.document is not None)
    prompting = window.prompting
    prompting.engine.set_backend(open_backend(f"sam:{weights}"))
    shown = []
    prompting.proposal_shown.connect(lambda p: p is not None and shown.append(time.perf_counter()))
    beat = Heartbeat(QtCore)
    started = beat.start()
    window.editor.set_tool("prompt")              # encodes the image (and the next) on the inference lane
    prompting.add_click(200, 150, True)
    wait(lambda: bool(shown))
    longest = beat.stop()
    waited = (shown[0] - started) if shown else float("nan")
    gaps = [(b - a, a - started) for a, b in zip(beat.ticks, beat.ticks[1:])]
    worst = sorted(gaps, reverse=True)[:3]
    print("  longest pauses (ms at s): " + ", ".join(f"{g * 1000:.0f} at {t:.2f}" for g, t in worst))
    print(f"[gui] first click with {label} while the embedding is computed")
    print(f"  longest GUI pause {longest:6.1f} ms = {longest / BUDGET_MS:4.2f}x the {BUDGET_MS:.0f} ms budget; "
          f"proposal after {waited:5.2f} s (a GUI that waited would have frozen {waited * 1000 / max(longest, 1e-3):.0f}x longer)")
    from segstudio.core.editing.service import UnsavedChoice
    window.saving.ask_unsaved = lambda names: UnsavedChoice.DISCARD
    window.close()
    app.processEvents()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run (minutes)")
    parser.add_argument("--parts", default="noc,decoder,gui", help="comma list of noc, decoder, gui")
    parser.add_argument("--sam", metavar="SPEC", help="also run this prompt model in the NoC harness")
    parser.add_argument("--objects", type=int, default=10, help="nuclei per demo image in the NoC part (default 10)")
    args = parser.parse_args()
    import os
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} "
          "(timings on a loaded machine are inflated by about load / CPUs)")
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    parts = set(args.parts.split(","))
    if "noc" in parts:
        part_noc(args)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        if "decoder" in parts or ("gui" in parts and not args.quick):
            backends = real_size_backends(directory)
            if "decoder" in parts:
                part_decoder_and_encoder(args, backends)
            del backends
        if "gui" in parts:
            part_gui(args, directory)


if __name__ == "__main__":
    main()
