"""Synthetic fluorescence-microscopy fields with exact labels, for the bundled demo.

A field looks like a widefield image of a cell culture stained for DNA (shown
light blue, DAPI-like), with a weak cytoplasm marker (green) and a mitosis
marker (magenta, a phospho-histone-H3-like stain that only some dividing cells
show clearly). Every labelled object is drawn from a known shape, so the
ground truth is exact and cheap; the *image* is made hard the way real
microscopy is hard:

* nuclei of very different brightness, some barely above background;
* colonies where nuclei touch and overlap (overlaps add up, as fluorescence does);
* dividing nuclei that are small and bright (metaphase bars, anaphase pairs,
  telophase doublets) but also early prophase nuclei that only differ from
  interphase nuclei by a grainy, condensed texture;
* debris (apoptotic bodies, fragments) that can be as round and as bright as a
  small nucleus or a dividing one;
* out-of-focus cells from another plane that are *not* labelled;
* defocus that varies across the field and per object, uneven illumination
  (vignetting plus a gradient), autofluorescence haze, Poisson and read noise.

Classes: 0 background, 1 nucleus, 2 dividing nucleus, 3 debris. Everything is
driven by one ``numpy.random.Generator`` seeded from the ``seed`` argument, so
the same seed and size always give identical arrays. Only numpy and OpenCV are
used (no torch), so the generator also runs in the app's core environment.

``python -m tools.demo.synth`` writes the demo dataset (see ``make_demo``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

CLASS_NAMES = ("background", "nucleus", "dividing nucleus", "debris")
# RGBA overlay colours, chosen to stand out against a blue/green/magenta image.
CLASS_COLORS = (
    (0, 0, 0, 0),
    (255, 193, 7, 255),     # amber
    (255, 64, 129, 255),    # pink-red
    (118, 255, 3, 255),     # lime
)
BACKGROUND, NUCLEUS, DIVIDING, DEBRIS = 0, 1, 2, 3

# The demo dataset and the training set draw their seeds from disjoint ranges so
# the demo images are never seen in training.
DEMO_SEEDS = tuple(range(900_000, 900_020))
TRAIN_SEED_BASE = 0

# RGB colour of each acquisition channel in the composite (DNA, cytoplasm, mitosis).
_CHANNEL_RGB = np.array(
    [[0.25, 0.55, 1.00],
     [0.10, 0.80, 0.20],
     [0.95, 0.15, 0.55]],
    dtype=np.float32,
)


@dataclass(frozen=True)
class SynthSample:
    """One generated field.

    Attributes
    ----------
    image : (H, W, 3) uint8 RGB composite.
    semantic : (H, W) uint8 class ids (0 background, 1 nucleus, 2 dividing, 3 debris).
    instances : (H, W) uint16 instance ids, 0 where no object; ids are 1..N, dense.
    instance_classes : instance id -> class id (the class under the instance).
    seed : the seed it was generated from.
    """

    image: np.ndarray
    semantic: np.ndarray
    instances: np.ndarray
    instance_classes: dict[int, int] = field(default_factory=dict)
    seed: int = 0


@dataclass
class _Object:
    """An object before rendering: its outline and how it shines in each channel."""

    cls: int                 # class id; 0 for unlabelled out-of-focus ghosts
    polygon: np.ndarray      # (n, 2) float x, y in image coordinates
    kind: str                # texture recipe: interphase | condensed | debris | ghost
    brightness: float        # DNA channel, 1.0 = a typical interphase nucleus
    defocus: float           # Gaussian sigma in px applied to this object's light
    cytoplasm: float         # cytoplasm-marker level around the object
    mitosis: float           # mitosis-marker level inside the object


def _outline(rng: np.random.Generator, cx: float, cy: float, a: float, b: float,
             angle: float, wobble: float, n: int = 48) -> np.ndarray:
    """Return an ellipse with a few random low-order harmonics, as an (n, 2) polygon.

    Low harmonics bend the ellipse into kidney and pear shapes like real nuclei;
    ``wobble`` is the standard deviation of their relative amplitude.
    """
    theta = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    radius = a * b / np.sqrt((b * np.cos(theta)) ** 2 + (a * np.sin(theta)) ** 2)
    for k in (2, 3, 4, 5):
        radius *= 1.0 + rng.normal(0.0, wobble / k ** 0.5) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    radius = np.maximum(radius, 0.6)
    x, y = radius * np.cos(theta), radius * np.sin(theta)
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """White noise blurred with ``sigma`` and rescaled to unit standard deviation."""
    noise = rng.standard_normal(shape).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    return noise / max(float(noise.std()), 1e-6)


def _low_frequency_field(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """A smooth random field in [0, 1]: a coarse random grid upsampled bicubically."""
    grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
    up = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    lo, hi = float(up.min()), float(up.max())
    return (up - lo) / max(hi - lo, 1e-6)


class _FieldBuilder:
    """Places the objects of one field; kept separate from rendering for clarity."""

    def __init__(self, rng: np.random.Generator, height: int, width: int):
        self.rng, self.height, self.width = rng, height, width
        self.objects: list[_Object] = []
        self._centres: list[tuple[float, float, float]] = []   # x, y, radius of placed cells
        # Depth of focus varies smoothly across the field (tilted or uneven sample).
        blur_scale = rng.uniform(0.4, 1.6)
        self._focus = blur_scale * 2.2 * _low_frequency_field(rng, height, width, 2)
        self._colonies = [
            (rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.12, 0.3) * max(height, width))
            for _ in range(rng.integers(1, 5))
        ]

    def _defocus_at(self, x: float, y: float, jitter: float = 0.5) -> float:
        xi = int(np.clip(x, 0, self.width - 1))
        yi = int(np.clip(y, 0, self.height - 1))
        return float(np.clip(self._focus[yi, xi] + self.rng.normal(0.0, jitter), 0.0, 4.0))

    def _free_spot(self, radius: float, clustered: bool) -> tuple[float, float] | None:
        """Find a centre whose cell does not bury a placed one (touching is allowed)."""
        rng = self.rng
        for _ in range(25):
            if clustered and self._colonies:
                cx, cy, spread = self._colonies[rng.integers(len(self._colonies))]
                x, y = rng.normal(cx, spread), rng.normal(cy, spread)
            else:
                x, y = rng.uniform(-radius, self.width + radius), rng.uniform(-radius, self.height + radius)
            if not (-radius <= x <= self.width + radius and -radius <= y <= self.height + radius):
                continue
            # 0.72 of the radii sum lets neighbours touch and overlap by up to a
            # quarter of their width, as in a dense colony, without hiding each other.
            if all((x - px) ** 2 + (y - py) ** 2 >= (0.72 * (radius + pr)) ** 2 for px, py, pr in self._centres):
                self._centres.append((x, y, radius))
                return x, y
        return None

    def add_interphase(self) -> None:
        rng = self.rng
        r = rng.uniform(9.0, 16.0)
        spot = self._free_spot(r, clustered=rng.random() < 0.75)
        if spot is None:
            return
        elong = rng.uniform(1.0, 1.45)
        brightness = rng.lognormal(0.0, 0.25)
        if rng.random() < 0.18:   # weakly stained or out-of-plane nucleus, barely above background
            brightness = rng.uniform(0.18, 0.4)
        self.objects.append(_Object(
            NUCLEUS, _outline(rng, *spot, r * elong ** 0.5, r / elong ** 0.5, rng.uniform(0, np.pi), 0.09),
            "interphase", brightness, self._defocus_at(*spot),
            cytoplasm=rng.uniform(0.0, 0.35) if rng.random() < 0.7 else 0.0,
            # G2 cells already carry some mitosis marker: a misleading cue.
            mitosis=rng.uniform(0.05, 0.3) if rng.random() < 0.07 else 0.0,
        ))

    def add_dividing(self) -> None:
        rng = self.rng
        stage = rng.choice(["prophase", "metaphase", "anaphase", "telophase"], p=[0.3, 0.3, 0.2, 0.2])
        r = rng.uniform(8.0, 12.0)
        spot = self._free_spot(r, clustered=rng.random() < 0.6)
        if spot is None:
            return
        x, y = spot
        angle = rng.uniform(0, np.pi)
        # The marker is strong in some cells and nearly absent in others.
        mitosis = rng.uniform(0.4, 1.0) if rng.random() < 0.55 else rng.uniform(0.0, 0.15)
        cytoplasm = rng.uniform(0.15, 0.45)   # mitotic cells round up and look bright
        defocus = self._defocus_at(x, y)

        def add(polygon: np.ndarray, brightness: float) -> None:
            self.objects.append(_Object(DIVIDING, polygon, "condensed", brightness, defocus, cytoplasm, mitosis))

        if stage == "prophase":   # nearly nucleus-sized, grainy: the hardest to tell apart
            add(_outline(rng, x, y, r * 0.85, r * 0.75, angle, 0.06), rng.uniform(1.0, 1.6))
        elif stage == "metaphase":   # a bright bar of chromosomes
            add(_outline(rng, x, y, rng.uniform(6.5, 10.0), rng.uniform(2.4, 3.8), angle, 0.08),
                rng.uniform(1.5, 2.4))
        else:
            # Anaphase: two bars pulling apart; telophase: two small dense daughters.
            gap = rng.uniform(4.0, 7.0) if stage == "anaphase" else rng.uniform(6.0, 9.0)
            dx, dy = -np.sin(angle) * gap, np.cos(angle) * gap
            for sign in (-1, 1):
                if stage == "anaphase":
                    outline = _outline(rng, x + sign * dx, y + sign * dy, rng.uniform(5.5, 8.5),
                                       rng.uniform(2.0, 3.2), angle, 0.1)
                else:
                    rr = rng.uniform(4.0, 6.0)
                    outline = _outline(rng, x + sign * dx, y + sign * dy, rr, rr * rng.uniform(0.7, 0.95),
                                       rng.uniform(0, np.pi), 0.08)
                add(outline, rng.uniform(1.4, 2.2))

    def add_debris(self) -> None:
        rng = self.rng
        x, y = rng.uniform(0, self.width), rng.uniform(0, self.height)
        defocus = self._defocus_at(x, y, jitter=0.8)
        kind = rng.choice(["fragment", "apoptotic", "large"], p=[0.5, 0.3, 0.2])
        if kind == "apoptotic":   # a cluster of small round, very bright bodies
            for _ in range(rng.integers(2, 5)):
                rr = rng.uniform(1.8, 4.0)
                px, py = x + rng.normal(0, 5), y + rng.normal(0, 5)
                self.objects.append(_Object(DEBRIS, _outline(rng, px, py, rr, rr * 0.85, 0, 0.1), "debris",
                                            rng.uniform(1.3, 2.8), defocus, 0.0, rng.uniform(0, 0.2)))
            return
        if kind == "large":   # about the size of a small nucleus, irregular, moderately bright
            rr, wobble, brightness = rng.uniform(5.0, 8.0), 0.3, rng.lognormal(-0.2, 0.4)
        else:
            rr, wobble, brightness = rng.uniform(1.5, 5.0), 0.45, rng.lognormal(0.0, 0.6)
        polygon = _outline(rng, x, y, rr, rr * rng.uniform(0.4, 1.0), rng.uniform(0, np.pi), wobble, n=24)
        self.objects.append(_Object(DEBRIS, polygon, "debris", brightness, defocus,
                                    rng.uniform(0.0, 0.15) if rng.random() < 0.15 else 0.0, 0.0))

    def add_ghost(self) -> None:
        """An unlabelled cell in another focal plane: a faint, very blurred blob."""
        rng = self.rng
        x, y, r = rng.uniform(0, self.width), rng.uniform(0, self.height), rng.uniform(9.0, 16.0)
        self.objects.append(_Object(BACKGROUND, _outline(rng, x, y, r, r * rng.uniform(0.7, 1.0), 0, 0.08),
                                    "ghost", rng.uniform(0.15, 0.45), rng.uniform(4.5, 7.5),
                                    rng.uniform(0.0, 0.2), 0.0))


def _object_light(rng: np.random.Generator, obj: _Object, mask: np.ndarray) -> np.ndarray:
    """DNA-channel intensity of one object inside its patch (before defocus)."""
    inside = mask.astype(np.float32)
    shape = mask.shape
    if obj.kind == "interphase":
        # Dome shading (thicker in the middle), chromatin texture, bright
        # chromocentres and dark nucleoli.
        depth = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
        dome = 0.65 + 0.35 * np.minimum(depth / max(float(depth.max()), 1.0) * 1.6, 1.0)
        texture = 1.0 + 0.16 * _smooth_noise(rng, shape, 1.2) + 0.12 * _smooth_noise(rng, shape, 3.5)
        spots = np.zeros(shape, np.float32)
        ys, xs = np.nonzero(mask)
        for _ in range(rng.poisson(4)):
            i = rng.integers(len(xs))
            cv2.circle(spots, (int(xs[i]), int(ys[i])), int(rng.integers(1, 3)), float(rng.uniform(0.3, 0.8)), -1)
        for _ in range(rng.integers(0, 3)):
            i = rng.integers(len(xs))
            cv2.circle(spots, (int(xs[i]), int(ys[i])), int(rng.integers(2, 4)), -0.45, -1)
        texture += cv2.GaussianBlur(spots, (0, 0), 0.8)
        light = dome * np.clip(texture, 0.1, None)
        edge = 0.8
    elif obj.kind == "condensed":
        # Condensed chromosomes: a grainy, high-contrast texture.
        light = 0.55 + 0.8 * np.clip(_smooth_noise(rng, shape, 0.9), 0.0, None)
        edge = 0.6
    elif obj.kind == "debris":
        light = np.clip(1.0 + 0.3 * _smooth_noise(rng, shape, 0.8), 0.2, None)
        edge = 0.5
    else:   # ghost
        light = np.ones(shape, np.float32)
        edge = 1.0
    soft = cv2.GaussianBlur(inside, (0, 0), edge)
    return (obj.brightness * soft * light).astype(np.float32)


def _render(rng: np.random.Generator, objects: list[_Object], height: int, width: int):
    """Draw labels and light of all objects; return (channels (3,H,W), instances, classes)."""
    channels = np.zeros((3, height, width), np.float32)
    instances = np.zeros((height, width), np.uint16)
    classes: dict[int, int] = {}
    next_id = 1
    for obj in objects:
        x0, y0 = np.floor(obj.polygon.min(axis=0)).astype(int)
        x1, y1 = np.ceil(obj.polygon.max(axis=0)).astype(int) + 1
        grow = int(np.ceil(3 * max(obj.defocus, 1.0))) + 16   # room for blur and the cytoplasm halo
        px0, py0 = max(x0 - grow, 0), max(y0 - grow, 0)
        px1, py1 = min(x1 + grow, width), min(y1 + grow, height)
        if px0 >= px1 or py0 >= py1:
            continue
        mask = np.zeros((py1 - py0, px1 - px0), np.uint8)
        # Sub-pixel vertices (shift=4) keep small objects from snapping to the grid.
        pts = np.round((obj.polygon - (px0, py0)) * 16).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=4)
        if not mask.any():
            continue
        window = (slice(py0, py1), slice(px0, px1))
        light = _object_light(rng, obj, mask)
        if obj.defocus > 0.3:
            light = cv2.GaussianBlur(light, (0, 0), obj.defocus)
        channels[0][window] += light
        if obj.cytoplasm > 0:
            radius = int(rng.integers(4, 11))
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
            cyto = cv2.GaussianBlur(cv2.dilate(mask, kernel).astype(np.float32), (0, 0), 3.0)
            cyto *= np.clip(1.0 + 0.3 * _smooth_noise(rng, mask.shape, 2.0), 0.0, None)
            channels[1][window] += obj.cytoplasm * cyto
        if obj.mitosis > 0:
            channels[2][window] += obj.mitosis * cv2.GaussianBlur(mask.astype(np.float32), (0, 0),
                                                                  1.0 + obj.defocus)
        if obj.cls != BACKGROUND:
            # Later objects lie on top: their label wins where they overlap.
            instances[window][mask > 0] = next_id
            classes[next_id] = obj.cls
            next_id += 1
    return channels, instances, classes


def _relabel(instances: np.ndarray, classes: dict[int, int]) -> tuple[np.ndarray, dict[int, int]]:
    """Drop fully hidden instances and renumber the rest 1..N in drawing order."""
    present = np.unique(instances)
    present = present[present > 0]
    lut = np.zeros(int(instances.max()) + 1 if instances.size else 1, np.uint16)
    lut[present] = np.arange(1, len(present) + 1, dtype=np.uint16)
    new_classes = {int(lut[i]): classes[int(i)] for i in present}
    return lut[instances], new_classes


def generate(seed: int, height: int = 256, width: int = 256) -> SynthSample:
    """Generate one field.

    Parameters
    ----------
    seed : int
        Seeds the only random generator used; same seed and size -> identical output.
    height, width : int
        Field size in pixels. Object sizes do not depend on it (nuclei are ~18-32 px across).

    Returns
    -------
    SynthSample
    """
    rng = np.random.default_rng(seed)
    builder = _FieldBuilder(rng, height, width)
    area = height * width
    coverage = rng.uniform(0.18, 0.42)
    n_cells = max(1, int(coverage * area / (np.pi * 12.5 ** 2)))
    mitotic_index = rng.uniform(0.1, 0.22)
    for _ in range(n_cells):
        if rng.random() < mitotic_index:
            builder.add_dividing()
        else:
            builder.add_interphase()
    for _ in range(int(n_cells * rng.uniform(0.25, 0.8))):
        builder.add_debris()
    for _ in range(rng.poisson(area / 40_000)):
        builder.add_ghost()
    # Random drawing order decides which of two overlapping objects is on top.
    order = rng.permutation(len(builder.objects))
    channels, instances, classes = _render(rng, [builder.objects[i] for i in order], height, width)
    instances, classes = _relabel(instances, classes)

    # Autofluorescence haze, strongest in the cytoplasm channel.
    haze = _low_frequency_field(rng, height, width, 4)
    channels[0] += rng.uniform(0.02, 0.08) * haze
    channels[1] += rng.uniform(0.03, 0.12) * haze
    # Optics: a mild point-spread blur on everything.
    psf = rng.uniform(0.5, 1.1)
    channels = np.stack([cv2.GaussianBlur(c, (0, 0), psf) for c in channels])
    # Uneven illumination: vignetting times a linear gradient, never below 40 %.
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = ((xx - width / 2) / (width / 2)) ** 2 + ((yy - height / 2) / (height / 2)) ** 2
    direction = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(direction) * (xx / width - 0.5) + np.sin(direction) * (yy / height - 0.5))
    illumination = (1.0 - rng.uniform(0.1, 0.35) * r2) * (1.0 + rng.uniform(0.0, 0.6) * ramp)
    channels *= np.clip(illumination, 0.4, None)[None]
    # Shot noise at a per-field photon budget, then camera read noise and offset.
    exposure = rng.uniform(0.33, 0.5)
    photons = rng.uniform(25.0, 120.0)
    signal = np.clip(channels * exposure, 0.0, None)
    signal = rng.poisson(signal * photons).astype(np.float32) / photons
    signal += rng.normal(0.015, rng.uniform(0.004, 0.015), signal.shape).astype(np.float32)
    rgb = np.tensordot(_CHANNEL_RGB.T, np.clip(signal, 0.0, None), axes=1)   # (3, H, W)
    image = np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0)

    lut = np.zeros(max(classes, default=0) + 1, np.uint8)
    for instance_id, class_id in classes.items():
        lut[instance_id] = class_id
    semantic = lut[instances]
    return SynthSample(np.ascontiguousarray(image), semantic, instances, classes, seed)


if __name__ == "__main__":
    from tools.demo.make_demo import main

    raise SystemExit(main())
