"""Tiny, randomly initialised SAM and SAM 2 models built with the packages' own classes (test helpers)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def tiny_sam(directory: Path, seed: int = 0):
    """A 2-block ViT SAM (real prompt encoder and mask decoder); returns ``(weights file, model)``."""
    from segment_anything.build_sam import _build_sam

    torch.manual_seed(seed)
    model = _build_sam(encoder_embed_dim=32, encoder_depth=2, encoder_num_heads=2,
                       encoder_global_attn_indexes=[1], checkpoint=None).eval()
    path = Path(directory) / "tiny_sam.pth"
    torch.save(model.state_dict(), path)
    return path, model


def tiny_sam2_config(directory: Path) -> Path:
    """The package's sam2.1 Hiera-tiny config shrunk to a 5-block, 8-channel trunk, as a YAML file."""
    import sam2
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(Path(sam2.__file__).parent / "configs/sam2.1/sam2.1_hiera_t.yaml")
    trunk = cfg.model.image_encoder.trunk
    trunk.embed_dim, trunk.num_heads, trunk.stages, trunk.global_att_blocks = 8, 1, [1, 1, 2, 1], [3]
    cfg.model.image_encoder.neck.backbone_channel_list = [64, 32, 16, 8]
    cfg.model.memory_attention.num_layers = 1
    path = Path(directory) / "tiny_sam2.yaml"
    OmegaConf.save(cfg, path)
    return path


def tiny_sam2(directory: Path, seed: int = 0):
    """``(weights file, config file, model)``: the model built the way ``sam2.build_sam.build_sam2``
    builds one (its post-processing overrides written out here), weights saved as ``{"model": ...}``
    like the released checkpoints."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    config = tiny_sam2_config(directory)
    cfg = OmegaConf.load(config)
    for key, value in (("dynamic_multimask_via_stability", True), ("dynamic_multimask_stability_delta", 0.05),
                       ("dynamic_multimask_stability_thresh", 0.98)):
        OmegaConf.update(cfg, f"model.sam_mask_decoder_extra_args.{key}", value, force_add=True)
    OmegaConf.resolve(cfg)
    torch.manual_seed(seed)
    model = instantiate(cfg.model, _recursive_=True).eval()
    path = Path(directory) / "tiny_sam2.pt"
    torch.save({"model": model.state_dict()}, path)
    return path, config, model


def sample_image(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """A small RGB image with a few bright discs on a textured background."""
    rng = np.random.default_rng(seed)
    img = (rng.random((h, w, 3)) * 60).astype(np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    for cx, cy, r in ((40, 40, 14), (90, 60, 18), (20, 80, 9)):
        img[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] += np.uint8(150)
    return img
