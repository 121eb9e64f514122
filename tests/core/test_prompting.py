"""Click-to-segment without torch: the click simulator, the seeded GrabCut, the engine and its cache."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from segstudio.core.prompting.clicks import clicks_to_iou, interior_point, iou, next_click, prompt_from_error_region
from segstudio.core.prompting.engine import EmbeddingCache, PromptEngine, image_fingerprint
from segstudio.core.prompting.grabcut import GrabCutBackend, plain_grabcut
from segstudio.core.prompting.types import Embedding, Prompt, prior_from_prediction
from segstudio.core.tasks import TaskRunner


def touching_discs(h=80, w=120):
    """Two bright touching discs (left one the target) on a noisy dark background."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:h, 0:w]
    left = (xx - 45) ** 2 + (yy - 40) ** 2 <= 16 ** 2
    right = (xx - 75) ** 2 + (yy - 40) ** 2 <= 16 ** 2
    gray = 30 + 140 * (left | right) + rng.normal(0, 8, (h, w))
    img = np.clip(np.dstack([gray * 0.6, gray * 0.8, gray]), 0, 255).astype(np.uint8)
    return img, left, right


def test_interior_point_and_simulator_clicks():
    region = np.zeros((20, 30), bool)
    region[5:15, 2:12] = True
    assert interior_point(region) in {(6, 9), (7, 9), (6, 10), (7, 10)}
    gt = region.copy()
    assert next_click(gt, None)[2] is True
    pred = np.zeros_like(gt)
    pred[5:15, 2:7] = True                   # misses the right half
    pred[0:3, 20:30] = True                  # a smaller extra
    x, y, positive = next_click(gt, pred)
    assert positive and gt[y, x] and not pred[y, x]


def test_clicks_to_iou_stops_when_reached():
    gt = np.zeros((10, 10), bool)
    gt[2:8, 2:8] = True
    run = clicks_to_iou(gt, lambda prompt, previous: gt, max_clicks=20, stop_at=0.9)
    assert run.ious == [1.0] and run.noc(0.85, 20) == 1
    never = clicks_to_iou(gt, lambda prompt, previous: np.zeros_like(gt), max_clicks=5)
    assert len(never.ious) == 5 and never.noc(0.85, 5) == 5


def test_seeded_grabcut_separates_touching_objects_with_a_prior():
    img, left, right = touching_discs()
    backend = GrabCutBackend()
    embedding = backend.set_image(img)
    prior = prior_from_prediction((left | right).astype(np.uint8))      # a model that merges them
    prompt = Prompt.of([(*interior_point(left), 1)], prior=prior)
    mask = backend.predict(embedding, prompt).mask()
    assert iou(mask, left) >= 0.85
    assert np.count_nonzero(mask & right) < 0.05 * right.sum()
    no_prior = backend.predict(embedding, Prompt.of([(*interior_point(left), 1)])).mask()
    assert iou(no_prior, left) >= 0.85                   # the intensity structure alone does it here too


def test_plain_grabcut_is_the_box_and_the_seeds():
    img, left, right = touching_discs()
    mask = plain_grabcut(img, Prompt.of([(45, 40, 1)]))
    assert not mask[:, 76:].any() and not mask[:, :15].any()     # nothing outside the 60-px box
    assert iou(mask, left) >= 0.7


def test_seeded_grabcut_refines_from_the_previous_mask():
    img, left, right = touching_discs()
    backend = GrabCutBackend()
    embedding = backend.set_image(img)
    previous = left | right
    prompt = Prompt.of([(*interior_point(left), 1), (75, 40, 0)], mask_input=previous[None].astype(np.float32))
    proposal = backend.predict(embedding, prompt)
    assert iou(proposal.mask(), left) >= 0.8
    assert proposal.logits.shape == (1, *left.shape)


def test_grabcut_box_only_and_empty_prompt():
    img, left, _ = touching_discs()
    backend = GrabCutBackend()
    embedding = backend.set_image(img)
    mask = backend.predict(embedding, Prompt.of(box=(27, 22, 62, 57))).mask()
    assert iou(mask, left) >= 0.8
    assert not backend.predict(embedding, Prompt()).mask().any()


def test_prompt_from_error_region():
    gt = np.zeros((40, 40), np.uint8)
    gt[10:30, 10:30] = 1
    pred = np.zeros_like(gt)
    pred[10:30, 14:34] = 1                     # shifted right: misses x 10..13, adds x 30..33
    region = (gt == 1) & (pred != 1)
    prompt = prompt_from_error_region(gt, pred, region[10:30, 10:14], (10, 10, 4, 20), class_id=1)
    positives = prompt.points[prompt.labels == 1]
    assert len(positives) >= 1 and all(region[int(y), int(x)] for x, y in positives)
    assert prompt.box == (6, 6, 33, 33)        # the labelled object, padded by 4
    extra = (pred == 1) & (gt != 1)
    prompt = prompt_from_error_region(gt, pred, extra[10:30, 30:34], (30, 10, 4, 20), class_id=1)
    negatives = prompt.points[prompt.labels == 0]
    assert len(negatives) >= 1 and all(extra[int(y), int(x)] for x, y in negatives)
    assert (prompt.labels == 1).sum() == 1     # one positive inside the labelled object it touches


def test_cache_is_lru_and_bounded_in_bytes():
    cache = EmbeddingCache(max_bytes=250)
    for name in "abc":
        cache.put(name, Embedding((1, 1), None, 100))
    assert "a" not in cache and "b" in cache and "c" in cache
    assert cache.get("b") is not None
    cache.put("d", Embedding((1, 1), None, 100))
    assert "c" not in cache and "b" in cache       # b was used more recently than c
    cache.put("huge", Embedding((1, 1), None, 10_000))
    assert len(cache) == 1 and "huge" in cache       # the newest is always kept


def test_fingerprint_follows_the_pixels():
    a = np.zeros((4, 5, 3), np.uint8)
    b = a.copy()
    assert image_fingerprint(a) == image_fingerprint(b)
    b[0, 0, 0] = 1
    assert image_fingerprint(a) != image_fingerprint(b)
    assert image_fingerprint(a) != image_fingerprint(a.reshape(5, 4, 3))


class CountingBackend(GrabCutBackend):
    """GrabCut that counts encodings and can hold the encoder until released."""

    def __init__(self):
        super().__init__()
        self.encodings = 0
        self.release = threading.Event()
        self.release.set()
        self.encoding_started = threading.Event()

    def set_image(self, image):
        self.encodings += 1
        self.encoding_started.set()
        assert self.release.wait(30)
        return super().set_image(image)


@pytest.fixture
def lanes():
    encode, decode = TaskRunner(1, "test-encode"), TaskRunner(1, "test-decode")
    yield encode, decode
    encode.shutdown(wait=True)
    decode.shutdown(wait=True)


def test_engine_encodes_once_per_image_and_waits_for_the_encoder(lanes):
    img, left, _ = touching_discs()
    backend = CountingBackend()
    results, errors = [], []
    done = threading.Semaphore(0)

    def delivered(result):
        results.append(result)
        done.release()

    engine = PromptEngine(backend, *lanes, on_proposal=delivered, on_error=errors.append)
    backend.release.clear()
    first = engine.request(img, Prompt.of([(45, 40, 1)]))
    assert backend.encoding_started.wait(30)
    assert engine.waiting and not results              # the click waits for its embedding
    second = engine.request(img, Prompt.of([(45, 40, 1), (75, 40, 0)]))   # a newer click meanwhile
    backend.release.set()
    assert done.acquire(timeout=30)
    assert [r.request_id for r in results] == [second] and first != second
    third = engine.request(img, Prompt.of([(45, 40, 1)]))
    assert done.acquire(timeout=30)
    assert results[-1].request_id == third
    assert backend.encodings == 1 and engine.cache.computed == 1 and engine.cache.hits == 1
    assert not errors


def test_engine_precomputes_the_next_image(lanes):
    img, _, _ = touching_discs()
    backend = CountingBackend()
    engine = PromptEngine(backend, *lanes, on_proposal=lambda r: None, on_error=print)
    assert engine.precompute(img)
    assert not engine.precompute(img)                 # already on its way
    lanes[0].active()[0].wait(30)
    assert engine.has_embedding(img) and backend.encodings == 1



class CancellingLane:
    """An encoder lane whose every job is cancelled before it runs (only on_finished is delivered)."""

    def submit(self, fn, *args, on_finished=None, **_callbacks):
        if on_finished is not None:
            on_finished()

    def cancel(self, key):
        pass


def test_a_cancelled_encoding_is_reported_not_waited_for_forever(lanes):
    img, _, _ = touching_discs()
    errors = []
    engine = PromptEngine(GrabCutBackend(), CancellingLane(), lanes[1], on_proposal=lambda r: None,
                          on_error=errors.append)
    engine.request(img, Prompt.of([(45, 40, 1)]))
    assert not engine.waiting and errors and "cancelled" in errors[0]
