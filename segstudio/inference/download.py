"""Pretrained weights: the torch hub cache and a download with a progress callback.

Files land where torchvision puts them (``torch.hub.get_dir()/checkpoints/<file from the URL>``),
so weights fetched by either tool serve both. Offline, a ``ModelDownloadError`` names the file
expected in the cache. This module imports torch only inside functions.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from segstudio.core.errors import SegStudioError

ProgressCallback = Callable[[int, int], None]
CHUNK = 1 << 20
_HASH_PREFIX = re.compile(r"-([a-f0-9]{6,})\.")


class ModelDownloadError(SegStudioError):
    """Pretrained weights are not in the cache and cannot be downloaded.

    ``path`` is the file expected in the cache; ``url`` where it would come from.
    """

    def __init__(self, path, reason, url: str | None = None):
        self.url = url
        super().__init__(path, reason)


def checkpoints_dir() -> Path:
    """``torch.hub.get_dir()/checkpoints`` (honours ``$TORCH_HOME``)."""
    import torch.hub  # noqa: PLC0415 - torch stays out of light imports

    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_path(url: str) -> Path:
    """Where the weights at ``url`` live in the cache: the URL's file name under ``checkpoints_dir()``."""
    return checkpoints_dir() / os.path.basename(urlparse(url).path)


def ensure_weights(url: str, progress: ProgressCallback | None = None, what: str = "") -> Path:
    """Return the cached file for ``url``, downloading it first when absent.

    Parameters
    ----------
    url : str
        A torchvision weights URL (its file name carries a sha256 prefix, which is checked).
    progress : callable, optional
        ``progress(bytes_done, bytes_total)``; ``bytes_total`` is 0 when the server does not say.
    what : str
        The model name, for messages.

    Raises
    ------
    ModelDownloadError
        Offline, HTTP error, interrupted transfer or hash mismatch; the message names the file
        expected in the cache and suggests loading a local file instead.
    """
    target = cached_path(url)
    if target.is_file():
        return target
    try:
        download(url, target, progress)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ModelDownloadError(
            target,
            f"pretrained weights{' for ' + what if what else ''} are not in the cache and could not "
            f"be downloaded from {url} ({reason}). Put the file at this path, or use "
            "\"Load model file…\" (--model FILE) with a local copy.",
            url=url,
        ) from exc
    return target


def download(url: str, target: Path, progress: ProgressCallback | None = None) -> None:
    """Stream ``url`` into ``target`` atomically (temp file + rename), checking the hash prefix."""
    target.parent.mkdir(parents=True, exist_ok=True)
    expected = _HASH_PREFIX.search(os.path.basename(urlparse(url).path))
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".partial", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            if progress:
                progress(0, total)
            while True:
                chunk = response.read(CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
            out.flush()
            os.fsync(out.fileno())
        if total and done != total:
            raise OSError(f"transfer interrupted after {done} of {total} bytes")
        if expected and not digest.hexdigest().startswith(expected.group(1)):
            raise ValueError(f"sha256 {digest.hexdigest()[:12]}… does not match the expected "
                             f"prefix {expected.group(1)}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
