"""SAM 2 / 2.1 (``sam2`` package) behind the prompt-backend interface.

The model is built from the package's Hydra config (or a YAML file the user names) with the
package's own classes, with the post-processing ``build_sam2`` applies by default, and the weights
are loaded with ``torch.load(weights_only=True)``. Without a config the Hiera size is taken from the
file name (``sam2.1_hiera_tiny.pt``) or else from the weights' shapes. As for SAM, one
``SAM2ImagePredictor`` encodes and another decodes from cached embeddings (``PredictorPair``),
through ``FastMaskDecoding`` as for SAM.
"""
from __future__ import annotations

import re
from pathlib import Path


from segstudio.core.errors import CheckpointError
from segstudio.inference.checkpoints import load_state_dict_file
from segstudio.inference.prompting.fast_decoder import FastMaskDecoding
from segstudio.inference.prompting.pair import PredictorPair
from segstudio.inference.prompting.registry import require

__all__ = ["Sam2Backend", "POSTPROCESSING", "config_for", "load_sam2_config"]

# What sam2.build_sam.build_sam2(apply_postprocessing=True) sets: the upstream default.
POSTPROCESSING = {
    "model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability": True,
    "model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta": 0.05,
    "model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh": 0.98,
}
_SIZES = {"tiny": "t", "small": "s", "base_plus": "b+", "base+": "b+", "large": "l",
          "t": "t", "s": "s", "b+": "b+", "l": "l"}
# Hiera trunk (embed dim, blocks) of each released size
_TRUNKS = {(96, 12): "t", (96, 16): "s", (112, 24): "b+", (144, 48): "l"}


def config_for(path: Path, state: dict | None, config: str | None) -> str:
    """The config to build ``path``'s model: ``config`` as given (a YAML file or a package config
    name, short forms allowed), else the one its file name or weights' shapes point to."""
    if config:
        if Path(config).expanduser().is_file():
            return str(Path(config).expanduser())
        name = config if config.endswith(".yaml") else f"{config}.yaml"
        if "/" not in name:
            short = _SIZES.get(config.lower())
            name = f"sam2.1_hiera_{short}.yaml" if short else name
            name = f"configs/{'sam2.1' if name.startswith('sam2.1') else 'sam2'}/{name}"
        return name
    version = "sam2.1" if "2.1" in path.name else "sam2"
    found = re.search(r"hiera_(tiny|small|base_plus|large|t|s|b\+|l)\b", path.stem.lower())
    size = _SIZES[found.group(1)] if found else None
    if size is None and state is not None:
        embed = state.get("image_encoder.trunk.patch_embed.proj.weight")
        blocks = {int(m.group(1)) for k in state if (m := re.match(r"image_encoder\.trunk\.blocks\.(\d+)\.", k))}
        size = _TRUNKS.get((int(embed.shape[0]), len(blocks))) if embed is not None else None
        version = "sam2.1" if any(k.startswith("no_obj_embed_spatial") for k in state) else "sam2"
    if size is None:
        raise CheckpointError(path, "cannot tell which SAM 2 size this is; give the config: "
                              "sam2:PATH:sam2.1_hiera_t (t, s, b+ or l) or a YAML file")
    return f"configs/{version}/{version}_hiera_{size}.yaml"


def load_sam2_config(name: str):
    """The OmegaConf config ``name`` (a YAML path or a package config) with the default post-processing."""
    require("sam2")
    from omegaconf import OmegaConf

    if Path(name).is_file():
        try:
            cfg = OmegaConf.load(name)
        except Exception as exc:  # noqa: BLE001 - yaml / omegaconf errors of a user file
            raise CheckpointError(name, f"not a SAM 2 config: {exc}") from None
    else:
        from hydra import compose
        try:
            cfg = compose(config_name=name)
        except Exception as exc:  # noqa: BLE001 - hydra's MissingConfigException and friends
            raise CheckpointError(name, f"no such SAM 2 config in the sam2 package ({exc})") from None
    if "model" not in cfg:
        raise CheckpointError(name, "not a SAM 2 config (no 'model' section)")
    for key, value in POSTPROCESSING.items():
        OmegaConf.update(cfg, key, value, force_add=True)
    OmegaConf.resolve(cfg)
    return cfg


class Sam2Backend(PredictorPair):
    """SAM 2 / 2.1 from a weights file and a config (see the module docstring)."""

    def __init__(self, path: str | Path, config: str | None = None, device: str = "cpu"):
        super().__init__(path, device)
        self.config = config
        self.model_id = f"sam2:{self.path.resolve()}:{config or ''}"

    def _build(self):
        require("sam2")
        from hydra.utils import instantiate
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        state = load_state_dict_file(self.path)
        name = config_for(self.path, state, self.config)
        model = instantiate(load_sam2_config(name).model, _recursive_=True)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise CheckpointError(self.path, f"weights do not fit the config {name}: "
                                  f"{len(missing)} missing (e.g. {missing[:2]}), "
                                  f"{len(unexpected)} unexpected (e.g. {unexpected[:2]})")
        model = model.to(self.device).eval()
        FastMaskDecoding(model.sam_mask_decoder, model.sam_prompt_encoder, sdpa=True).install()
        return SAM2ImagePredictor(model), SAM2ImagePredictor(model)

    def _encode(self, predictor, rgb):
        predictor.set_image(rgb)
        state = {"features": predictor._features, "orig_hw": predictor._orig_hw}
        predictor.reset_predictor()
        return state, [state["features"]["image_embed"], *state["features"]["high_res_feats"]]

    def _attach(self, predictor, state):
        predictor._features = state["features"]
        predictor._orig_hw = state["orig_hw"]
        predictor._is_image_set, predictor._is_batch = True, False

    def _detach(self, predictor):
        predictor.reset_predictor()
