"""Running a ``ModelEntry`` on images: devices, tiling, batching, cancellation, OOM fallback.

``Runner.predict`` handles one image (sliding-window tiles when it is larger than ``tile_size``);
``Runner.predict_dataset`` streams a dataset with a loader thread decoding the next images while
the model runs. Cancellation is cooperative: a forward pass cannot be interrupted, so the
``CancelToken`` is checked between tiles and between batches.
"""
from __future__ import annotations

import queue
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from segstudio.core.errors import PredictionError
from segstudio.core.evaluation.prediction import Prediction
from segstudio.core.tasks import TaskKind, TaskRunner
from segstudio.inference import memory, preprocess
from segstudio.inference.cancel import CancelToken, Cancelled  # noqa: F401 - re-exported API
from segstudio.inference.devices import check_cuda_usable, gpu_report, is_out_of_memory, select_device
from segstudio.inference.tiling import Outputs, TileBlender, tile_starts, two_class_logits, write_resized

__all__ = ["CancelToken", "Cancelled", "Prediction", "Runner", "gpu_report", "check_cuda_usable",
           "model_logits"]

Progress = Callable[[int, int], None]
MIN_TILE = 256
# An image whose untiled prediction would need more than MEMORY_SHARE of the free memory is
# predicted in AUTO_TILE tiles even without a tile size.
AUTO_TILE = 1024
AUTO_OVERLAP = 64
MEMORY_SHARE = 0.5


def model_logits(output) -> torch.Tensor:
    """The logits tensor of a segmentation model's output (torchvision dict, tuple or tensor)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        return output["out"] if "out" in output else next(iter(output.values()))
    if isinstance(output, (tuple, list)) and output:
        return model_logits(output[0])
    raise TypeError(f"cannot find logits in a model output of type {type(output).__name__}")


def _empty_cuda_cache() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _check(cancel: CancelToken | None) -> None:
    if cancel is not None:
        cancel.raise_if_cancelled()


@dataclass
class _Item:
    index: int
    image: np.ndarray | None = None
    array: np.ndarray | None = None   # prepared 3xhxw input; None -> predict the image alone (tiled)
    key: tuple | None = None          # items batch together only when their keys are equal
    error: BaseException | None = None


class Runner:
    """Runs one model on one device.

    Parameters
    ----------
    entry : ModelEntry
    device : str
        ``auto`` (CUDA when available, then MPS, then CPU), ``cuda``, ``mps`` or ``cpu``.
    tile_size : int or None
        Images with a side longer than this are predicted in overlapping tiles at their own
        resolution (the entry's input size is then not applied). None: tile (``AUTO_TILE``, with
        one notice) only an image whose untiled prediction would not fit in the free memory.
    overlap : int
        Tile overlap in pixels; logits are blended with raised-cosine ramps over it.
    batch_size : int
        Images (``predict_dataset``) or tiles (``predict``) per forward pass.
    score_threshold, mask_threshold : float
        Instance models: keep detections scoring at least this; mask probability cut.
    precision : str
        ``auto`` (float16 autocast on CUDA, float32 elsewhere), ``float16`` or ``float32``.
    on_notice : callable, optional
        ``on_notice(message)`` for fallbacks taken (CUDA out of memory -> smaller tiles -> CPU);
        every message is also kept in ``notices``.
    download_progress : callable, optional
        ``progress(bytes_done, bytes_total)`` while pretrained weights download.
    probabilities : bool
        Semantic models: also return the per-pixel class probabilities (``Prediction.probabilities``,
        ``(C, H, W)`` float16). Off by default: 2·C bytes a pixel.
    """

    def __init__(self, entry, device: str = "auto", tile_size: int | None = None, overlap: int = 64,
                 batch_size: int = 1, *, score_threshold: float = 0.5, mask_threshold: float = 0.5,
                 precision: str = "auto", on_notice: Callable[[str], None] | None = None,
                 download_progress: Progress | None = None, probabilities: bool = False):
        if tile_size is not None and tile_size < 16:
            raise ValueError(f"tile_size must be at least 16, got {tile_size}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if precision not in ("auto", "float16", "float32"):
            raise ValueError(f"precision must be auto, float16 or float32, got {precision!r}")
        self.entry = entry
        self.notices: list[str] = []
        self._auto_tile_said = False
        self._on_notice = on_notice
        self.device = select_device(self._usable_device(device))
        self.tile_size = tile_size
        self.overlap = max(0, int(overlap))
        self.batch_size = int(batch_size)
        self.score_threshold = float(score_threshold)
        self.mask_threshold = float(mask_threshold)
        self.precision = precision
        self.probabilities = bool(probabilities)
        self.model = entry.load(str(self.device), download_progress)
        self._cancel: CancelToken | None = None
        self._install_cancel_hooks()
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

    # -- properties --------------------------------------------------------------------------------
    @property
    def device_name(self) -> str:
        if self.device.type == "cuda":
            try:
                return f"cuda ({torch.cuda.get_device_name(self.device)})"
            except Exception:  # noqa: BLE001 - a name is cosmetic
                return "cuda"
        return self.device.type

    @property
    def half(self) -> bool:
        """Whether forward passes run under float16 autocast."""
        return self.device.type == "cuda" and self.precision in ("auto", "float16")

    def _install_cancel_hooks(self) -> None:
        """Check the active token before every submodule runs, so a cancel lands mid-forward.

        A forward pass cannot be interrupted from outside, but raising from a forward pre-hook
        stops it at the next module boundary (no state is touched in eval/inference mode). This
        bounds cancel latency by one block of the network rather than one whole tile or batch.
        TorchScript modules take no Python hooks; they stop between tiles and batches only.
        """
        if isinstance(self.model, torch.jit.ScriptModule):
            return

        def check(module, args):
            token = self._cancel
            if token is not None and token.cancelled:
                raise Cancelled()

        for module in self.model.modules():
            if not isinstance(module, torch.jit.ScriptModule):
                module.register_forward_pre_hook(check)

    @contextmanager
    def _watching(self, cancel: CancelToken | None):
        previous, self._cancel = self._cancel, cancel
        try:
            yield
        finally:
            self._cancel = previous

    def _usable_device(self, requested: str) -> str:
        """``auto``/``cuda`` on a machine whose CUDA is present but broken runs on the CPU, and says so.

        A GPU build on a lab machine with an old driver must fall back, not crash at model load.
        """
        from segstudio.inference.gpu_check import effective_device, gpu_check

        device = effective_device(requested)
        if device == "cpu" and (requested or "auto").strip().lower() != "cpu":
            report = gpu_check()  # cached: effective_device already ran it
            if report.get("cuda_available") and not report.get("cuda_usable"):
                self._notice(f"{report.get('verdict')}; running on the CPU")
        return device

    def _notice(self, message: str) -> None:
        self.notices.append(message)
        if self._on_notice is not None:
            self._on_notice(message)

    # -- single image ------------------------------------------------------------------------------
    def predict(self, image: np.ndarray, cancel: CancelToken | None = None,
                progress: Progress | None = None) -> Prediction:
        """Predict one decoded image (HxW, HxWx3 or HxWx4; uint8, uint16 or float).

        Semantic models fill ``mask`` (uint8, uint16 beyond 256 classes), ``confidence`` (max
        softmax) and ``entropy`` (/ log C); instance models fill ``instances`` (above the score
        threshold, ``scores`` filled) and ``mask`` with their classes. ``source`` is the entry's name.

        Raises
        ------
        Cancelled
            ``cancel`` was set; checked before every tile and at every submodule of the network.
        """
        image = np.asarray(image)
        if image.ndim not in (2, 3) or image.shape[0] < 1 or image.shape[1] < 1:
            raise ValueError(f"expected an HxW or HxWxC image, got shape {image.shape}")
        with self._watching(cancel):
            return self._predict_with_fallback(image, cancel, progress)

    def _predict_with_fallback(self, image: np.ndarray, cancel: CancelToken | None,
                               progress: Progress | None) -> Prediction:
        while True:
            try:
                _check(cancel)
                if self.entry.kind == "instance":
                    result = self._predict_instances([image])[0]
                    if progress:
                        progress(1, 1)
                    return result
                tiles = self._tiles_for(image)
                if tiles is not None:
                    return self._predict_tiled(image, cancel, progress, *tiles)
                result = self._predict_batch([self._prepare(image)], [image.shape[:2]], image)[0]
                if progress:
                    progress(1, 1)
                return result
            except Exception as exc:  # noqa: BLE001 - only OOM is handled, the rest re-raised
                if not is_out_of_memory(exc) or not self._on_gpu():
                    raise
                self._recover_from_oom(image.shape[:2], exc)

    def _on_gpu(self) -> bool:
        return self.device.type != "cpu"

    def _move_to_cpu(self) -> None:
        self.model = self.model.to("cpu")
        self.device = torch.device("cpu")

    def _tiles_for(self, image: np.ndarray, say: bool = True) -> tuple[int, int] | None:
        """``(tile size, overlap)`` when ``image`` is predicted in tiles, else None."""
        if self.tile_size is not None:
            return (self.tile_size, self.overlap) if max(image.shape[:2]) > self.tile_size else None
        need, free = self._untiled_need(image)
        if need is None or free is None or need <= MEMORY_SHARE * free:
            return None
        if say and not self._auto_tile_said:
            self._auto_tile_said = True
            height, width = image.shape[:2]
            self._notice(f"a {width}x{height} image needs about {need / 2**30:.1f} GiB untiled, more than "
                         f"{MEMORY_SHARE:.0%} of the {free / 2**30:.1f} GiB free; predicting such images in "
                         f"{AUTO_TILE}px tiles (--tile sets a size)")
        return AUTO_TILE, AUTO_OVERLAP

    def _untiled_need(self, image: np.ndarray) -> tuple[int | None, int | None]:
        """(estimated bytes to predict ``image`` whole, bytes free); (None, None) when tiles cannot help:
        an instance model, a model that resizes its input, or an image within one tile."""
        entry = self.entry
        if (entry.kind != "semantic" or entry.input_size or getattr(entry, "short_side", None)
                or max(image.shape[:2]) <= AUTO_TILE):
            return None, None
        height, width = image.shape[:2]
        need = memory.untiled_bytes(height, width, entry.class_table.num_classes if entry.class_table else 2)
        free = memory.available_bytes()
        if self.device.type == "cuda":
            try:
                gpu_free = int(torch.cuda.mem_get_info(self.device)[0])
                free = gpu_free if free is None else min(free, gpu_free)
            except Exception:  # noqa: BLE001 - the host figure still applies
                pass
        return need, free

    def _prepare(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        size = None if self.entry.kind == "instance" else preprocess.model_input_size(self.entry, width, height)
        return preprocess.prepare(image, self.entry, size)

    def _recover_from_oom(self, shape: tuple[int, int], exc: BaseException) -> None:
        """Next step down after CUDA OOM: smaller tiles, then the CPU."""
        _empty_cuda_cache()
        side = max(shape)
        current = self.tile_size if self.tile_size is not None else side
        smaller = 1 << (max(1, current - 1).bit_length() - 1)  # next power of two below
        if self.entry.kind == "semantic" and smaller >= MIN_TILE and smaller < side:
            self.tile_size = smaller
            self._notice(f"out of GPU memory on a {shape[1]}x{shape[0]} image; retrying with "
                         f"{smaller}px tiles")
            return
        self._move_to_cpu()
        self._notice(f"out of GPU memory ({str(exc).strip().splitlines()[0][:120]}); "
                     "falling back to the CPU")

    # -- forward passes ----------------------------------------------------------------------------
    def _autocast(self):
        if self.half:
            return torch.autocast(device_type="cuda", dtype=torch.float16)
        return nullcontext()

    def _to_input(self, arrays: list[np.ndarray], raw_dtype: np.dtype) -> torch.Tensor:
        mul, add = preprocess.normaliser(self.entry, raw_dtype)
        batch = torch.from_numpy(np.stack(arrays) if len(arrays) > 1 else arrays[0][None])
        batch = batch.to(self.device, non_blocking=True).float()
        mul_t = torch.from_numpy(mul).to(self.device).view(1, 3, 1, 1)
        add_t = torch.from_numpy(add).to(self.device).view(1, 3, 1, 1)
        return batch.mul_(mul_t).add_(add_t)

    def _forward_semantic(self, arrays: list[np.ndarray], raw_dtype: np.dtype) -> torch.Tensor:
        """Normalise and run a batch of same-size 3xhxw arrays; float32 logits (B, C, h, w)."""
        x = self._to_input(arrays, raw_dtype)
        height, width = x.shape[-2:]
        divisor = getattr(self.entry, "size_divisor", 1) or 1
        pad_h, pad_w = -height % divisor, -width % divisor
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        with torch.inference_mode(), self._autocast():
            logits = model_logits(self.model(x))
        if logits.ndim != 4 or logits.shape[0] != x.shape[0]:
            raise RuntimeError(f"the model returned {tuple(logits.shape)}, expected N x C x H x W")
        return two_class_logits(logits[..., :height, :width].float())

    def _predict_batch(self, arrays: list[np.ndarray], shapes: list[tuple[int, int]],
                       like: np.ndarray) -> list[Prediction]:
        logits = self._forward_semantic(arrays, like.dtype)
        results = []
        for item_logits, (height, width) in zip(logits, shapes):
            out = Outputs(height, width, item_logits.shape[0], self.probabilities)
            with torch.inference_mode():
                write_resized(item_logits, out, size=(width, height))
            results.append(Prediction(out.mask, out.confidence, out.entropy, source=self.entry.name,
                                      probabilities=out.probabilities))
        return results

    def _predict_tiled(self, image: np.ndarray, cancel: CancelToken | None,
                       progress: Progress | None, tile: int, overlap: int) -> Prediction:
        """Sliding-window prediction streamed through a one-tile-row blend buffer."""
        height, width = image.shape[:2]
        tile_h, tile_w = min(tile, height), min(tile, width)
        overlap = min(overlap, tile // 2)
        ys, xs = tile_starts(height, tile_h, overlap), tile_starts(width, tile_w, overlap)
        total, done = len(ys) * len(xs), 0
        raw_dtype = image.dtype
        blender = None
        for y in ys:
            for first in range(0, len(xs), self.batch_size):
                _check(cancel)
                chunk = xs[first:first + self.batch_size]
                tiles = [preprocess.prepare(image[y:y + tile_h, x:x + tile_w], self.entry) for x in chunk]
                logits = self._forward_semantic(tiles, raw_dtype)
                with torch.inference_mode():
                    if blender is None:
                        outputs = Outputs(height, width, logits.shape[1], self.probabilities)
                        blender = TileBlender(outputs, logits.shape[1], tile_h, tile_w, overlap, self.device)
                    for x, tile_logits in zip(chunk, logits):
                        blender.add(x, tile_logits)
                del logits
                done += len(chunk)
                if progress:
                    progress(done, total)
            with torch.inference_mode():
                blender.end_row()
        out = blender.outputs
        return Prediction(out.mask, out.confidence, out.entropy, source=self.entry.name,
                          probabilities=out.probabilities)

    def _predict_instances(self, images: list[np.ndarray]) -> list[Prediction]:
        inputs = [self._to_input([self._prepare(img)], img.dtype)[0] for img in images]
        with torch.inference_mode(), self._autocast():
            outputs = self.model(inputs)
        if isinstance(outputs, tuple) and len(outputs) == 2 and isinstance(outputs[1], list):
            outputs = outputs[1]  # scripted detection models return (losses, detections)
        return [self._instances(out, img.shape[:2]) for out, img in zip(outputs, images)]

    def _instances(self, out: dict, shape: tuple[int, int]) -> Prediction:
        from segstudio.core.io.masks import InstanceMask  # noqa: PLC0415

        height, width = shape
        scores = out["scores"].float().cpu().numpy()
        keep = np.flatnonzero(scores >= self.score_threshold)
        keep = keep[np.argsort(-scores[keep], kind="stable")]  # instance id 1 = highest score
        labels = out["labels"].cpu().numpy()
        label_map = self.entry.label_map
        ids = np.zeros((height, width), np.int32)
        semantic = np.zeros((height, width), np.uint8 if self.entry.class_table.num_classes <= 256 else np.uint16)
        classes, kept_scores = {}, {}
        # Paint from the lowest score up, so where masks overlap the higher-scoring instance wins.
        for rank in range(len(keep) - 1, -1, -1):
            det = keep[rank]
            pixels = (out["masks"][det, 0] > self.mask_threshold).cpu().numpy()
            label = int(labels[det])
            class_id = int(label_map[label]) if label_map is not None and label < len(label_map) else label
            ids[pixels] = rank + 1
            semantic[pixels] = class_id
            classes[rank + 1] = class_id
            kept_scores[rank + 1] = float(scores[det])
        visible = set(np.unique(ids).tolist()) - {0}
        classes = {k: classes[k] for k in sorted(visible)}
        kept_scores = {k: kept_scores[k] for k in sorted(visible)}
        return Prediction(semantic, instances=InstanceMask(ids, classes, kept_scores), source=self.entry.name)

    # -- datasets ----------------------------------------------------------------------------------
    def predict_dataset(self, dataset, indices: Iterable[int] | None = None,
                        cancel: CancelToken | None = None, progress: Progress | None = None,
                        on_error: Callable[[int, BaseException], None] | None = None,
                        ) -> Iterator[tuple[int, Prediction]]:
        """Yield ``(index, prediction)`` for each sample, in order.

        A loader thread decodes and resizes the next images into a bounded queue while the model
        runs; consecutive images with the same model-input size are batched (``batch_size``),
        images needing tiles run alone. ``progress(done, total)`` follows each batch.

        Parameters
        ----------
        on_error : callable, optional
            ``on_error(index, exc)`` for a sample that fails to load, or on which the model fails
            (a ``PredictionError`` naming the image); the sample is skipped and the run goes on.
            Without it the error is raised.

        Raises
        ------
        Cancelled
            Checked between batches (and between tiles of a tiled image).
        """
        indices = list(range(len(dataset))) if indices is None else list(indices)
        total, done = len(indices), 0
        loader = _Prefetcher(dataset, indices, self._load_item, depth=max(2, 2 * self.batch_size))
        try:
            for batch in self._batches(loader, on_error):
                _check(cancel)
                with self._watching(cancel):
                    results = (self._run_batch(batch, cancel) if on_error is None
                               else self._run_batch_reporting(batch, cancel, dataset, on_error))
                yield from results
                done += len(batch)
                if progress:
                    progress(done, total)
        finally:
            loader.close()

    def _load_item(self, dataset, index: int) -> _Item:
        image = np.asarray(dataset[index].load_image())
        if self.entry.kind == "semantic" and self._tiles_for(image, say=False) is not None:
            return _Item(index, image)
        array = self._prepare(image)
        key = ("instance",) if self.entry.kind == "instance" else (array.shape, array.dtype.str,
                                                                   image.dtype.str)
        return _Item(index, image, array, key)

    def _batches(self, loader: "_Prefetcher", on_error) -> Iterator[list[_Item]]:
        batch: list[_Item] = []
        for item in loader:
            if item.error is not None:
                if on_error is None:
                    raise item.error
                on_error(item.index, item.error)
                continue
            if batch and (item.key is None or item.key != batch[0].key or len(batch) >= self.batch_size):
                yield batch
                batch = []
            if item.key is None:
                yield [item]
            else:
                batch.append(item)
        if batch:
            yield batch

    def _run_batch_reporting(self, batch: list[_Item], cancel, dataset, on_error) -> list[tuple[int, object]]:
        """``_run_batch``; when the model fails, each image alone, reporting the ones it fails on."""
        try:
            return self._run_batch(batch, cancel)
        except Cancelled:
            raise
        except Exception as exc:  # noqa: BLE001 - one image must not end the run
            if len(batch) == 1:
                on_error(batch[0].index, _model_failure(dataset, batch[0].index, exc))
                return []
        results = []
        for item in batch:
            try:
                results.append((item.index, self.predict(item.image, cancel)))
            except Cancelled:
                raise
            except Exception as exc:  # noqa: BLE001 - reported, then the next image
                on_error(item.index, _model_failure(dataset, item.index, exc))
        return results

    def _run_batch(self, batch: list[_Item], cancel) -> list[tuple[int, object]]:
        if batch[0].key is None or len(batch) == 1:
            return [(item.index, self.predict(item.image, cancel)) for item in batch]
        try:
            if self.entry.kind == "instance":
                results = self._predict_instances([item.image for item in batch])
            else:
                results = self._predict_batch([item.array for item in batch],
                                              [item.image.shape[:2] for item in batch], batch[0].image)
            return [(item.index, result) for item, result in zip(batch, results)]
        except Exception as exc:  # noqa: BLE001 - only OOM is handled, the rest re-raised
            if not is_out_of_memory(exc) or not self._on_gpu():
                raise
            _empty_cuda_cache()
            self.batch_size = 1
            self._notice(f"out of GPU memory with a batch of {len(batch)}; continuing one image at a time")
            return [(item.index, self.predict(item.image, cancel)) for item in batch]


def _model_failure(dataset, index: int, exc: BaseException) -> PredictionError:
    """The model raising on one image, as an error naming that image (the message whole, one line)."""
    message = " ".join(str(exc).split())
    where = getattr(dataset[index], "image_path", None) or getattr(dataset[index], "name", index)
    return PredictionError(where, f"the model failed on this image: {type(exc).__name__}"
                           + (f": {message}" if message else ""))


class _Prefetcher:
    """Loads items on a task-runner thread into a bounded queue; iterate to receive them in order.

    It has a runner of its own, not the app's shared one: it holds its thread for the whole dataset
    run (it is the inference lane's loader), which would hold up the short tasks queued there.
    """

    _END = object()

    def __init__(self, dataset, indices: list[int], load: Callable, depth: int):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._tasks = TaskRunner(max_workers=1, name="segstudio-prefetch")
        self._task = self._tasks.submit(self._work, dataset, indices, load, kind=TaskKind.PREFETCH)

    def _put(self, context, value) -> bool:
        while not context.cancelled:
            try:
                self._queue.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self, context, dataset, indices, load) -> None:
        for index in indices:
            if context.cancelled:
                return
            try:
                item = load(dataset, index)
            except Exception as exc:  # noqa: BLE001 - handed to the consumer, which decides
                item = _Item(index, error=exc)
            if not self._put(context, item):
                return
        self._put(context, self._END)

    def __iter__(self) -> Iterator[_Item]:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            yield item

    def close(self) -> None:
        self._task.cancel()
        while True:  # unblock a producer waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._tasks.shutdown(wait=True)
