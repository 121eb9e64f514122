"""Segment Anything (``segment-anything`` package) behind the prompt-backend interface.

The architecture (ViT-B / L / H, or any other size) is read from the checkpoint's shapes, the model is
built with the package's own classes and the weights loaded with ``torch.load(weights_only=True)``.
Two ``SamPredictor`` share the model (``PredictorPair``: one encodes, one decodes from cached
embeddings). The decoder's ``predict_masks`` is ``FastMaskDecoding`` (same maths, about half the CPU
time per click).
"""
from __future__ import annotations

import re
from pathlib import Path


from segstudio.core.errors import CheckpointError
from segstudio.inference.checkpoints import load_state_dict_file
from segstudio.inference.prompting.fast_decoder import FastMaskDecoding
from segstudio.inference.prompting.pair import PredictorPair
from segstudio.inference.prompting.registry import require

__all__ = ["SamBackend", "build_sam_from_state", "sam_architecture"]

IMAGE_SIZE, PATCH, WINDOW = 1024, 16, 14


def sam_architecture(state: dict, path=None) -> dict:
    """``_build_sam`` arguments (embed dim, depth, heads, global-attention blocks) read from the weights."""
    try:
        embed_dim = int(state["image_encoder.patch_embed.proj.weight"].shape[0])
        blocks = sorted({int(m.group(1)) for k in state if (m := re.match(r"image_encoder\.blocks\.(\d+)\.", k))})
        head_dim = int(state["image_encoder.blocks.0.attn.rel_pos_h"].shape[1])
        global_size = 2 * (IMAGE_SIZE // PATCH) - 1
        global_blocks = [i for i in blocks if state[f"image_encoder.blocks.{i}.attn.rel_pos_h"].shape[0] == global_size]
    except (KeyError, IndexError, AttributeError) as exc:
        raise CheckpointError(path, f"not a Segment Anything checkpoint (no {exc} in it)") from None
    if not blocks or embed_dim % head_dim:
        raise CheckpointError(path, "not a Segment Anything checkpoint (image encoder shapes do not fit)")
    return {"encoder_embed_dim": embed_dim, "encoder_depth": len(blocks),
            "encoder_num_heads": embed_dim // head_dim, "encoder_global_attn_indexes": global_blocks}


def build_sam_from_state(state: dict, path=None):
    """A ``Sam`` built with the package's classes for these weights, weights loaded (strict)."""
    build = require("segment_anything.build_sam")
    model = build._build_sam(**sam_architecture(state, path), checkpoint=None)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(path, f"weights do not fit the SAM architecture: {str(exc).splitlines()[0]}") from None
    return model.eval()


class SamBackend(PredictorPair):
    """SAM from a weights file (see the module docstring)."""

    def __init__(self, path: str | Path, device: str = "cpu"):
        super().__init__(path, device)
        self.model_id = f"sam:{self.path.resolve()}"

    def _build(self):
        predictor = require("segment_anything.predictor")
        model = build_sam_from_state(load_state_dict_file(self.path), self.path).to(self.device)
        FastMaskDecoding(model.mask_decoder, model.prompt_encoder, sdpa=False).install()
        return predictor.SamPredictor(model), predictor.SamPredictor(model)

    def _encode(self, predictor, rgb):
        predictor.set_image(rgb, image_format="RGB")
        state = {"features": predictor.features, "original_size": predictor.original_size,
                 "input_size": predictor.input_size}
        predictor.reset_image()
        return state, [state["features"]]

    def _attach(self, predictor, state):
        predictor.features = state["features"]
        predictor.original_size = state["original_size"]
        predictor.input_size = state["input_size"]
        predictor.is_image_set = True

    def _detach(self, predictor):
        predictor.reset_image()
