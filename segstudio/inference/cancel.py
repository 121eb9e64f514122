"""Cooperative cancellation, importable without torch.

The GUI makes a token on its own thread before torch is loaded (the window must appear first), and
the runner checks the same token between tiles and batches. A forward pass itself cannot be
interrupted; cancellation takes effect at the next check. The token is the task runner's
(``segstudio.core.tasks``), so the inference lane and the background tasks cancel the same way.
"""
from __future__ import annotations

from segstudio.core.tasks import Cancelled, CancelToken

__all__ = ["Cancelled", "CancelToken"]
