"""The prompt engine: one embedding per image on the encoder lane, each click decoded on the task runner.

:class:`PromptEngine` is Qt-free. It is given two lanes with the ``TaskRunner.submit`` shape: the
*encoder lane* (in the GUI the inference worker, where the GPU is; ``set_image`` runs there) and the
*decoder lane* (the task runner; ``predict`` runs there). Embeddings are kept in an
:class:`EmbeddingCache` (LRU by image fingerprint + model, bounded in bytes), so a second click on an
image never encodes it again, and :meth:`PromptEngine.precompute` fills it for the next image in
review order before the user gets there.

A click on an image whose embedding is still being computed waits for it *as a request*, not on a
thread: when the encoding arrives the newest waiting request is decoded. Only the newest request
counts: a decode superseded by a newer click is cancelled or, once computed, dropped unseen.
"""
from __future__ import annotations

import hashlib
import itertools
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Hashable

import numpy as np

from segstudio.core.prompting.types import Embedding, Prompt, PromptBackend, Proposal
from segstudio.core.tasks import TaskKind

__all__ = ["EmbeddingCache", "PromptEngine", "PromptResult", "image_fingerprint"]

DEFAULT_CACHE_BYTES = 1 << 30       # SAM ViT-H: 4 MB a fp32 embedding; GrabCut: 2x the image


def image_fingerprint(image: np.ndarray) -> str:
    """A content hash of the pixels (shape and dtype included): the same image, the same key."""
    data = np.ascontiguousarray(image)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((data.shape, data.dtype.str)).encode())
    digest.update(memoryview(data).cast("B"))
    return digest.hexdigest()


class EmbeddingCache:
    """LRU of embeddings keyed ``(fingerprint, model_id)``, at most ``max_bytes`` (the newest always kept).

    ``computed`` counts embeddings stored, ``hits`` lookups that found one (tests and benches read them).
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES):
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[Hashable, Embedding] = OrderedDict()
        self._lock = threading.Lock()
        self.computed = 0
        self.hits = 0

    def get(self, key: Hashable) -> Embedding | None:
        with self._lock:
            embedding = self._items.get(key)
            if embedding is not None:
                self._items.move_to_end(key)
                self.hits += 1
            return embedding

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def put(self, key: Hashable, embedding: Embedding) -> None:
        with self._lock:
            self._items[key] = embedding
            self._items.move_to_end(key)
            self.computed += 1
            while len(self._items) > 1 and self.nbytes > self.max_bytes:
                self._items.popitem(last=False)

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


@dataclass
class PromptResult:
    """A proposal delivered for request ``request_id`` on image ``image_key``."""

    request_id: int
    image_key: Hashable
    prompt: Prompt
    proposal: Proposal


def _encode(_context, backend: PromptBackend, image: np.ndarray, cache: "EmbeddingCache", key) -> Embedding:
    cached = cache.get(key)       # a precompute of the same image queued before this one got there first
    return cached if cached is not None else backend.set_image(image)


def _encode_loaded(_context, backend: PromptBackend, load: Callable[[], np.ndarray], cache: "EmbeddingCache"):
    image = load()
    key = (image_fingerprint(image), backend.model_id)
    if key in cache:
        return None
    return key, backend.set_image(image)


def _decode(context, backend: PromptBackend, embedding: Embedding, prompt: Prompt) -> Proposal:
    context.checkpoint()          # superseded while queued: do not start
    return backend.predict(embedding, prompt)


class PromptEngine:
    """Requests in, proposals out; see the module docstring.

    Parameters
    ----------
    backend : PromptBackend
        Replaced with :meth:`set_backend`.
    encode_lane, decode_lane
        ``submit(fn, *args, kind=, key=, on_returned=, on_errored=)``: a ``TaskRunner`` (or the GUI's
        inference-lane adapter). ``fn`` gets a task context first.
    on_proposal : callable
        ``on_proposal(PromptResult)``, on the lanes' dispatch thread.
    on_error : callable
        ``on_error(message)`` when encoding or decoding fails.
    """

    def __init__(self, backend: PromptBackend, encode_lane, decode_lane,
                 on_proposal: Callable[[PromptResult], None], on_error: Callable[[str], None],
                 cache: EmbeddingCache | None = None):
        self.backend = backend
        self.encode_lane = encode_lane
        self.decode_lane = decode_lane
        self.on_proposal = on_proposal
        self.on_error = on_error
        self.cache = cache if cache is not None else EmbeddingCache()
        self._ids = itertools.count(1)
        self._latest = 0
        self._waiting: tuple[int, Hashable, Prompt] | None = None
        self._encoding: set[Hashable] = set()
        self._fingerprints: dict[int, tuple[weakref.ref, str]] = {}
        self._lock = threading.Lock()

    # --- model and keys -------------------------------------------------------------------------
    def set_backend(self, backend: PromptBackend) -> None:
        """Use another model; embeddings of the old one stay cached under its own id."""
        with self._lock:
            self.backend = backend
            self._waiting = None
            self._latest = next(self._ids)       # whatever the old model still delivers is stale

    def fingerprint(self, image: np.ndarray) -> str:
        """The image's fingerprint, hashed once per array object."""
        entry = self._fingerprints.get(id(image))
        if entry is not None and entry[0]() is image:
            return entry[1]
        value = image_fingerprint(image)
        self._fingerprints = {k: v for k, v in self._fingerprints.items() if v[0]() is not None}
        self._fingerprints[id(image)] = (weakref.ref(image), value)
        return value

    def key_for(self, image: np.ndarray) -> tuple[str, str]:
        return self.fingerprint(image), self.backend.model_id

    def has_embedding(self, image: np.ndarray) -> bool:
        return self.key_for(image) in self.cache

    # --- requests -------------------------------------------------------------------------------
    def precompute(self, image: np.ndarray) -> bool:
        """Encode ``image`` ahead (the next image in review order); True when an encoding was queued."""
        return self._ensure_encoded(self.key_for(image), image)

    def precompute_from(self, load: Callable[[], np.ndarray]) -> None:
        """Decode (``load()``, on the encoder lane) and encode an image not open yet: the next in
        review order. Nothing is reported; a failure is the opening's to report."""
        def encoded(result) -> None:
            if result is not None and result[0] not in self.cache:
                self.cache.put(*result)

        self.encode_lane.submit(_encode_loaded, self.backend, load, self.cache, kind=TaskKind.PROMPT_ENCODE,
                                on_returned=encoded, on_errored=lambda _exc: None)

    def request(self, image: np.ndarray, prompt: Prompt) -> int:
        """Ask for a proposal; returns the request id. Earlier requests are dropped."""
        key = self.key_for(image)
        with self._lock:
            request_id = self._latest = next(self._ids)
            self._waiting = None
        embedding = self.cache.get(key)
        if embedding is not None:
            self._submit_decode(request_id, key, embedding, prompt)
        else:
            with self._lock:
                self._waiting = (request_id, key, prompt)
            self._ensure_encoded(key, image)
        return request_id

    def cancel(self) -> None:
        """Drop every pending request (Esc, another image)."""
        with self._lock:
            self._waiting = None
            self._latest = next(self._ids)
        self.decode_lane.cancel(("prompt-decode", id(self)))

    @property
    def waiting(self) -> bool:
        """A request waits for its image's embedding."""
        return self._waiting is not None

    # --- internals --------------------------------------------------------------------------------
    def _ensure_encoded(self, key, image: np.ndarray) -> bool:
        with self._lock:
            if key in self._encoding or key in self.cache:
                return False
            self._encoding.add(key)
        backend = self.backend

        def encoded(embedding: Embedding) -> None:
            if key not in self.cache:
                self.cache.put(key, embedding)
            with self._lock:
                self._encoding.discard(key)
                waiting = self._waiting
                if waiting is not None and waiting[1] == key and waiting[0] == self._latest \
                        and backend is self.backend:
                    self._waiting = None
                else:
                    waiting = None
            if waiting is not None:
                self._submit_decode(waiting[0], key, embedding, waiting[2])

        def failed(exc: BaseException) -> None:
            with self._lock:
                self._encoding.discard(key)
                waiting, self._waiting = self._waiting, None
            if waiting is not None or backend is self.backend:
                self.on_error(str(exc) if str(exc) else type(exc).__name__)

        def ended(*_args: Any) -> None:
            with self._lock:
                self._encoding.discard(key)     # cancelled (the lane's Cancel, the window closing)
                waiting = self._waiting
                lost = waiting is not None and waiting[1] == key and key not in self.cache
                if lost:
                    self._waiting = None
            if lost:
                self.on_error("The image embedding was cancelled before it was ready; click again")

        self.encode_lane.submit(_encode, backend, image, self.cache, key, kind=TaskKind.PROMPT_ENCODE,
                                on_returned=encoded, on_errored=failed, on_finished=ended)
        return True

    def _submit_decode(self, request_id: int, key, embedding: Embedding, prompt: Prompt) -> None:
        def decoded(proposal: Proposal) -> None:
            if request_id == self._latest:
                self.on_proposal(PromptResult(request_id, key, prompt, proposal))

        def failed(exc: BaseException) -> None:
            if request_id == self._latest:
                self.on_error(str(exc) if str(exc) else type(exc).__name__)

        self.decode_lane.submit(_decode, self.backend, embedding, prompt, kind=TaskKind.PROMPT_DECODE,
                                key=("prompt-decode", id(self)), on_returned=decoded, on_errored=failed)
