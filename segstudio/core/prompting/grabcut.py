"""The offline prompt backend: OpenCV GrabCut seeded with what segstudio knows, no weights needed.

Plain ``cv2.grabCut`` (box + clicks as hard seeds, :func:`plain_grabcut`) starts from "everything in
the box may be object" and splits touching objects badly: on the demo's nuclei it needs about nine
clicks for IoU 0.85. :class:`GrabCutBackend` adds three seeds:

1. **A prior**: the prediction's object probability when there is one (``Prompt.prior``; its
   confident pixels are hard seeds, GrabCut decides where the model hesitates and around the clicks),
   else the image's own intensity structure (colour nearness to the clicked pixels against the
   surroundings), is GrabCut's initial mask. A positive click where the model saw background means
   the model missed that object, and its prior is set aside.
2. **The object's shape around the click**: touching objects are told apart star-convexly, rays from
   the first positive click stop where the foreground ends and those running on into a neighbour
   (longer than ``REACH`` times the median ray) are cut back; then a **watershed on the image's
   edges** between that core and the rest of the foreground draws the line between touching objects,
   and a last GrabCut in a narrow band fits the outline to the pixels.
3. **Refinement**: with the previous proposal as ``mask_input``, each new click edits it (a positive
   click outside adds a disk reaching back to it, a negative click inside cuts one out) before the
   band GrabCut, so a click fixes what it points at and leaves the rest alone.

torch-free; the "embedding" is the image as uint8 RGB and a smoothed copy.
"""
from __future__ import annotations

import cv2
import numpy as np

from segstudio.core.prompting.types import Embedding, Prompt, Proposal, as_rgb8

__all__ = ["GrabCutBackend", "plain_grabcut"]

SEED_RADIUS = 2          # pixels around a click fixed as object / not object
FG_LEVEL = 0.5           # prior probability from which a pixel is probably object
SURE = 0.85              # prior probability above which (below 1 - which) a pixel is a hard seed
BAND = 3                 # pixels each side of the outline the final GrabCut may move it
GROW = 2                 # the refined outline starts this far outside (labels trace blurred edges' feet)
CLICK_SPAN = 3.0         # half-width (pixels) of the sector a click pulls or pushes
RAYS = 64                # directions of the star-convex shape around the first positive click
REACH = 1.15             # a ray longer than this many times the median one is cut back (a neighbour)
REOPEN_RADIUS = 6        # pixels around a click where the prior's hard seeds are lifted
PLAIN_BOX = 60           # the baseline's box: this wide around the positive clicks


def _seed_clicks(mask: np.ndarray, prompt: Prompt, origin: tuple[int, int], radius: int = SEED_RADIUS) -> None:
    ox, oy = origin
    for (x, y), label in zip(prompt.points, prompt.labels):
        cv2.circle(mask, (int(x) - ox, int(y) - oy), radius, int(cv2.GC_FGD if label else cv2.GC_BGD), -1)


def _run_grabcut(crop: np.ndarray, mask: np.ndarray, iterations: int) -> np.ndarray:
    """GrabCut from ``mask`` (GC_* codes); returns the object pixels (needs both sides seeded)."""
    fg = np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD))
    if fg.all() or not fg.any():
        return fg
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)          # GrabCut seeds its colour models with k-means: same prompt, same mask
    try:
        cv2.grabCut(crop, mask, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:          # a colour model with too few samples on one side: keep the seeds
        return fg
    return np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD))


def plain_grabcut(image: np.ndarray, prompt: Prompt, iterations: int = 5) -> np.ndarray:
    """The baseline: ``cv2.grabCut`` in a 60-px box around the positive clicks (or the prompt's box),
    the clicks as hard seeds, nothing else. The colour models see the box plus a margin as wide
    again (outside the box is background), which is what GrabCut on the whole image would see near it."""
    img = as_rgb8(image)
    H, W = img.shape[:2]
    box = _box_for(prompt, PLAIN_BOX // 2, (H, W))
    out = np.zeros((H, W), dtype=bool)
    if box is None:
        return out
    x0, y0, x1, y1 = box
    m = PLAIN_BOX // 2
    cx0, cy0, cx1, cy1 = max(0, x0 - m), max(0, y0 - m), min(W, x1 + m), min(H, y1 + m)
    mask = np.full((cy1 - cy0, cx1 - cx0), cv2.GC_BGD, np.uint8)
    mask[y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0] = cv2.GC_PR_FGD
    _seed_clicks(mask, prompt, (cx0, cy0))
    out[cy0:cy1, cx0:cx1] = _run_grabcut(img[cy0:cy1, cx0:cx1], mask, iterations)
    return out


def _agreement(mask: np.ndarray, prior: np.ndarray | None) -> float:
    """GrabCut's score: the mean object probability of the prior inside the mask (1 without a prior,
    0 for an empty mask)."""
    if not mask.any():
        return 0.0
    return 1.0 if prior is None else float(prior[mask].mean())


def _box_for(prompt: Prompt, half: int, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The prompt's box, else a box ``2 * half`` wide around its positive clicks (half-open, clipped)."""
    H, W = shape
    if prompt.box is not None:
        x0, y0, x1, y1 = prompt.box
        x0, x1 = sorted((x0, x1))
        y0, y1 = sorted((y0, y1))
        box = int(np.floor(x0)), int(np.floor(y0)), int(np.floor(x1)) + 1, int(np.floor(y1)) + 1
    else:
        pos = prompt.points[prompt.labels > 0]
        if len(pos) == 0:
            return None
        lo, hi = pos.min(axis=0), pos.max(axis=0)
        box = int(lo[0]) - half, int(lo[1]) - half, int(hi[0]) + half + 1, int(hi[1]) + half + 1
    x0, y0, x1, y1 = max(0, box[0]), max(0, box[1]), min(W, box[2]), min(H, box[3])
    return None if x1 <= x0 or y1 <= y0 else (x0, y0, x1, y1)


class GrabCutBackend:
    """Seeded GrabCut behind the prompt-backend interface (see the module docstring).

    Parameters
    ----------
    window : int
        Half-size of the working window around the positive clicks when there is no box and no prior.
    iterations : int
        GrabCut iterations per click.
    """

    model_id = "grabcut"
    supports_mask_input = True      # the previous proposal's mask, full size

    def __init__(self, window: int = 40, iterations: int = 4):
        self.window = int(window)
        self.iterations = int(iterations)

    def set_image(self, image: np.ndarray) -> Embedding:
        img = as_rgb8(image)
        smooth = cv2.GaussianBlur(img, (0, 0), 1.5)
        return Embedding(img.shape[:2], (img, smooth), img.nbytes + smooth.nbytes)

    # --- the steps --------------------------------------------------------------------------------
    def _window(self, prompt: Prompt, prior: np.ndarray | None, shape) -> tuple[int, int, int, int] | None:
        box = _box_for(prompt, self.window, shape)
        if box is not None and prompt.box is not None:     # room outside the box for the background model
            m = max(8, self.window // 2)
            return max(0, box[0] - m), max(0, box[1] - m), min(shape[1], box[2] + m), min(shape[0], box[3] + m)
        if box is None or prior is None:
            return box
        # grow to the prior's object(s) under the positive clicks, plus a margin for the background model
        H, W = shape
        bx, by = box[0], box[1]
        x0, y0, x1, y1 = box
        obj = (prior[by:y1, bx:x1] >= 0.5).astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(obj, connectivity=8)
        for (x, y) in prompt.points[prompt.labels > 0]:
            label = labels[int(y) - by, int(x) - bx] if count > 1 else 0
            if label:
                sx, sy, sw, sh = (int(v) for v in stats[label, :4])
                m = max(8, max(sw, sh) // 2)
                x0, y0 = min(x0, bx + sx - m), min(y0, by + sy - m)
                x1, y1 = max(x1, bx + sx + sw + m), max(y1, by + sy + sh + m)
        return max(0, x0), max(0, y0), min(W, x1), min(H, y1)

    @staticmethod
    def _intensity_prior(smooth: np.ndarray, prompt: Prompt, origin) -> np.ndarray:
        """Object probability from colour: nearness to the clicked object's colour vs the surroundings'."""
        ox, oy = origin
        h, w = smooth.shape[:2]
        pix = smooth.reshape(-1, 3).astype(np.float32)

        def colours_at(label: int) -> np.ndarray:
            pts = prompt.points[prompt.labels == label]
            return np.array([smooth[min(h - 1, max(0, int(y) - oy)), min(w - 1, max(0, int(x) - ox))]
                             for x, y in pts], np.float32).reshape(-1, 3)

        fg = colours_at(1)
        if len(fg) == 0:
            return np.full((h, w), 0.5, np.float32)
        border = np.concatenate([smooth[0], smooth[-1], smooth[:, 0], smooth[:, -1]]).astype(np.float32)
        bg = np.concatenate([colours_at(0), border])
        d_fg = np.min(((pix[:, None, :] - fg[None]) ** 2).sum(-1), axis=1)
        d_bg = np.median(((pix[:, None, :] - bg[None, :64]) ** 2).sum(-1), axis=1)
        return (d_bg / (d_fg + d_bg + 1e-6)).reshape(h, w).astype(np.float32)

    @staticmethod
    def _reopen_near_clicks(mask: np.ndarray, prompt: Prompt, origin) -> None:
        """Around each click the prediction was wrong: its sure pixels become probable again there."""
        ox, oy = origin
        for (x, y), label in zip(prompt.points, prompt.labels):
            near = np.zeros(mask.shape, np.uint8)
            cv2.circle(near, (int(x) - ox, int(y) - oy), REOPEN_RADIUS, 1, -1)
            near = near.astype(bool)
            if label:
                mask[near & (mask == cv2.GC_BGD)] = cv2.GC_PR_FGD
            else:
                mask[near & (mask == cv2.GC_FGD)] = cv2.GC_PR_BGD

    @staticmethod
    def _star(obj: np.ndarray, pos: list, neg: list) -> np.ndarray:
        """The star-convex part of ``obj`` seen from the first positive click.

        Rays leave the click in ``RAYS`` directions and stop where ``obj`` ends; a ray that runs on
        much farther than the median one has entered a touching neighbour and is cut back to
        ``REACH`` times the median. Other positive clicks pull the rays toward them out to themselves,
        negative clicks push them back to short of themselves. Returns the filled polygon.
        """
        h, w = obj.shape
        cx, cy = pos[0]
        angles = np.linspace(0, 2 * np.pi, RAYS, endpoint=False)
        steps = np.arange(1, int(np.hypot(h, w)) + 1, dtype=np.float32)
        xs = cx + np.cos(angles)[:, None] * steps[None]
        ys = cy + np.sin(angles)[:, None] * steps[None]
        inside = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
        hit = np.zeros_like(inside)
        hit[inside] = obj[ys[inside].astype(int), xs[inside].astype(int)]
        free = np.argmin(hit, axis=1).astype(np.float32)      # first step outside the object
        free[hit.all(axis=1)] = len(steps)
        radius = np.minimum(free, REACH * max(1.0, float(np.median(free))))

        def nearest_rays(x, y):
            rho = float(np.hypot(x - cx, y - cy))
            phi = np.arctan2(y - cy, x - cx) % (2 * np.pi)
            gap = np.abs((angles - phi + np.pi) % (2 * np.pi) - np.pi)
            return rho, gap <= max(2 * np.pi / RAYS, np.arctan2(CLICK_SPAN, max(rho, 1.0)))

        for x, y in pos[1:]:
            rho, rays = nearest_rays(x, y)
            radius[rays] = np.maximum(radius[rays], rho + 2)
        for x, y in neg:
            rho, rays = nearest_rays(x, y)
            radius[rays] = np.minimum(radius[rays], max(1.0, rho - 2))
        poly = np.stack([cx + np.cos(angles) * radius, cy + np.sin(angles) * radius], axis=1)
        star = np.zeros((h, w), np.uint8)
        cv2.fillPoly(star, [np.round(poly).astype(np.int32)], 1)
        return star.astype(bool)

    @staticmethod
    def _split(obj: np.ndarray, smooth: np.ndarray, prompt: Prompt, origin) -> np.ndarray:
        """This object's share of ``obj`` when it touches others: a watershed on the image's edges
        between the star-convex core around the positive clicks and the rest of ``obj``."""
        ox, oy = origin
        h, w = obj.shape
        clicks = [(int(x) - ox, int(y) - oy, int(lab)) for (x, y), lab in zip(prompt.points, prompt.labels)
                  if 0 <= int(x) - ox < w and 0 <= int(y) - oy < h]
        pos = [(x, y) for x, y, lab in clicks if lab]
        neg = [(x, y) for x, y, lab in clicks if not lab]
        if not pos or not obj.any():
            return obj
        star = GrabCutBackend._star(obj, pos, neg)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        markers = np.zeros((h, w), np.int32)
        markers[~obj] = 1
        markers[obj & ~cv2.dilate(star.astype(np.uint8), kernel, iterations=2).astype(bool)] = 3
        markers[cv2.erode((star & obj).astype(np.uint8), kernel, iterations=2).astype(bool)] = 2
        for x, y in pos:
            cv2.circle(markers, (x, y), SEED_RADIUS, 2, -1)
        for x, y in neg:
            cv2.circle(markers, (x, y), SEED_RADIUS, 3, -1)
        gray = cv2.cvtColor(np.ascontiguousarray(smooth), cv2.COLOR_RGB2GRAY)
        edges = cv2.morphologyEx(gray, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
        cv2.watershed(cv2.cvtColor(edges, cv2.COLOR_GRAY2BGR), markers)
        part = markers == 2
        count, labels = cv2.connectedComponents(part.astype(np.uint8))
        keep = {int(labels[y, x]) for x, y in pos} - {0}
        return np.isin(labels, list(keep)) if keep else part

    @staticmethod
    def _refine(crop: np.ndarray, obj: np.ndarray, prompt: Prompt, origin, iterations: int) -> np.ndarray:
        """GrabCut once more in a band around ``obj`` (its core sure, beyond the band sure background),
        so the outline follows the image's colours to the pixel; the parts holding positive clicks."""
        if not obj.any():
            return obj
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        if GROW:
            obj = cv2.dilate(obj.astype(np.uint8), kernel, iterations=GROW).astype(bool)
        u8 = obj.astype(np.uint8)
        mask = np.full(obj.shape, cv2.GC_BGD, np.uint8)
        mask[cv2.dilate(u8, kernel, iterations=BAND).astype(bool)] = cv2.GC_PR_BGD
        mask[obj] = cv2.GC_PR_FGD
        mask[cv2.erode(u8, kernel, iterations=BAND).astype(bool)] = cv2.GC_FGD
        _seed_clicks(mask, prompt, origin)
        out = _run_grabcut(crop, mask, iterations)
        count, labels = cv2.connectedComponents(out.astype(np.uint8))
        ox, oy = origin
        keep = {int(labels[int(y) - oy, int(x) - ox]) for (x, y), lab in zip(prompt.points, prompt.labels)
                if lab and 0 <= int(y) - oy < obj.shape[0] and 0 <= int(x) - ox < obj.shape[1]} - {0}
        return np.isin(labels, list(keep)) if keep else out

    def _edit(self, img: np.ndarray, previous: np.ndarray, prompt: Prompt) -> np.ndarray:
        """Refinement: the previous mask changed where the newest click says, then its outline
        re-fitted. A positive click outside it adds a disk reaching back to it (radius: the click's
        distance from the mask), a negative click inside cuts one out the same way."""
        H, W = previous.shape
        x, y = (int(v) for v in prompt.points[-1])
        positive = bool(prompt.labels[-1])
        if not (0 <= x < W and 0 <= y < H):
            return previous
        ys, xs = np.nonzero(previous)
        if ys.size == 0:
            return previous
        m = 4 * BAND + 4
        x0, y0 = max(0, min(int(xs.min()), x) - m), max(0, min(int(ys.min()), y) - m)
        x1, y1 = min(W, max(int(xs.max()), x) + m + 1), min(H, max(int(ys.max()), y) + m + 1)
        obj = previous[y0:y1, x0:x1].copy()
        cx, cy = x - x0, y - y0
        if obj[cy, cx] != positive:
            side = (~obj if positive else obj).astype(np.uint8)
            depth = cv2.distanceTransform(np.pad(side, 1, constant_values=1), cv2.DIST_L2, 5)[1:-1, 1:-1]
            radius = max(SEED_RADIUS, int(np.ceil(depth[cy, cx])) + 1)
            disk = np.zeros(obj.shape, np.uint8)
            cv2.circle(disk, (cx, cy), radius, 1, -1)
            obj = obj | disk.astype(bool) if positive else obj & ~disk.astype(bool)
        out = previous.copy()
        out[y0:y1, x0:x1] = self._refine(img[y0:y1, x0:x1], obj, prompt, (x0, y0), self.iterations)
        return out

    def predict(self, embedding: Embedding, prompt: Prompt) -> Proposal:
        img, smooth = embedding.state
        H, W = embedding.shape
        prior = prompt.prior if prompt.prior is not None and prompt.prior.shape == (H, W) else None
        previous = prompt.mask_input
        if previous is not None and len(prompt.points) and np.shape(previous)[-2:] == (H, W):
            previous = np.asarray(previous).reshape(-1, H, W)[0] > 0
            if previous.any():
                out = self._edit(img, previous, prompt)
                return Proposal(out[None], np.float32([_agreement(out, prior)]), out[None].astype(np.float32))
        if prior is not None and any(prior[min(H - 1, max(0, int(y))), min(W - 1, max(0, int(x)))] < FG_LEVEL
                                     for (x, y), lab in zip(prompt.points, prompt.labels) if lab):
            prior = None      # the model missed the clicked object: its prior would hold it back
        out = np.zeros((H, W), dtype=bool)
        window = self._window(prompt, prior, (H, W))
        if window is None:
            return Proposal(out[None], np.zeros(1, np.float32))
        x0, y0, x1, y1 = window
        origin = (x0, y0)
        if prior is not None:
            p = prior[y0:y1, x0:x1]
        else:
            p = self._intensity_prior(smooth[y0:y1, x0:x1], prompt, origin)
        mask = np.where(p >= FG_LEVEL, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
        if prior is not None:
            # a confident prediction is a hard seed; GrabCut decides only where the model hesitates
            mask[p >= SURE] = cv2.GC_FGD
            mask[p <= 1.0 - SURE] = cv2.GC_BGD
            self._reopen_near_clicks(mask, prompt, origin)
        if prompt.box is not None:
            bx0, by0, bx1, by1 = _box_for(prompt, 0, (H, W))
            outside = np.ones(mask.shape, bool)
            outside[by0 - y0:by1 - y0, bx0 - x0:bx1 - x0] = False
            mask[outside] = cv2.GC_BGD
        _seed_clicks(mask, prompt, origin)
        obj = _run_grabcut(img[y0:y1, x0:x1], mask, self.iterations)
        obj = cv2.morphologyEx(obj.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)
        if len(prompt.points):
            obj = self._split(obj, smooth[y0:y1, x0:x1], prompt, origin)
            obj = self._refine(img[y0:y1, x0:x1], obj, prompt, origin, self.iterations)
        out[y0:y1, x0:x1] = obj
        return Proposal(out[None], np.float32([_agreement(out, prior)]), out[None].astype(np.float32))
