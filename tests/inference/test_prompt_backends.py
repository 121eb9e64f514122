"""SAM and SAM 2.1 backends: segstudio's masks equal the packages' own predictors, pixel for pixel."""
from __future__ import annotations

import numpy as np
import pytest

from segstudio.core.errors import CheckpointError
from segstudio.core.prompting.types import Prompt
from segstudio.inference.prompting import registry
from tests.inference.prompt_models import sample_image, tiny_sam, tiny_sam2

pytest.importorskip("segment_anything")
pytest.importorskip("sam2")

PROMPTS = {
    "points": dict(points=[(40, 40, 1), (90, 60, 0)]),
    "box": dict(box=(70, 40, 110, 80)),
    "points_and_box": dict(points=[(90, 60, 1)], box=(70, 40, 110, 80)),
}


def _direct(predictor, prompt: Prompt, mask_input=None, multimask=True):
    return predictor.predict(point_coords=prompt.points if len(prompt.points) else None,
                             point_labels=prompt.labels if len(prompt.points) else None,
                             box=None if prompt.box is None else np.asarray(prompt.box, np.float32),
                             mask_input=mask_input, multimask_output=multimask)


def _check_equal(ours, theirs):
    masks, scores, logits = theirs
    assert ours.masks.shape == masks.shape
    assert np.array_equal(ours.masks, masks.astype(bool))
    np.testing.assert_allclose(ours.scores, scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.logits, logits, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def sam(tmp_path_factory):
    from segment_anything import SamPredictor

    path, model = tiny_sam(tmp_path_factory.mktemp("sam"))
    backend = registry.open_backend(f"sam:{path}")
    direct = SamPredictor(model)
    direct.set_image(sample_image())
    return path, backend, backend.set_image(sample_image()), direct


@pytest.fixture(scope="module")
def sam2_model(tmp_path_factory):
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    path, config, model = tiny_sam2(tmp_path_factory.mktemp("sam2"))
    backend = registry.open_backend(f"sam2:{path}:{config}")
    direct = SAM2ImagePredictor(model)
    direct.set_image(sample_image())
    return path, backend, backend.set_image(sample_image()), direct


@pytest.mark.parametrize("kind", sorted(PROMPTS))
def test_sam_matches_sam_predictor(sam, kind):
    _, backend, embedding, direct = sam
    prompt = Prompt.of(**PROMPTS[kind])
    ours = backend.predict(embedding, prompt)
    _check_equal(ours, _direct(direct, prompt))
    assert ours.masks.any() and not ours.masks.all()     # a comparison of two blank masks proves nothing


def test_sam_refinement_with_previous_logits(sam):
    _, backend, embedding, direct = sam
    first = backend.predict(embedding, Prompt.of([(40, 40, 1)]))
    previous = first.logits[first.best][None]
    prompt = Prompt.of([(40, 40, 1), (60, 40, 0)], mask_input=previous, multimask=False)
    _check_equal(backend.predict(embedding, prompt), _direct(direct, prompt, mask_input=previous, multimask=False))


@pytest.mark.parametrize("kind", sorted(PROMPTS))
def test_sam2_matches_sam2_image_predictor(sam2_model, kind):
    _, backend, embedding, direct = sam2_model
    prompt = Prompt.of(**PROMPTS[kind])
    ours = backend.predict(embedding, prompt)
    _check_equal(ours, _direct(direct, prompt))
    assert ours.masks.any() and not ours.masks.all()


def test_sam2_refinement_with_previous_logits(sam2_model):
    _, backend, embedding, direct = sam2_model
    first = backend.predict(embedding, Prompt.of([(90, 60, 1)]))
    previous = first.logits[first.best][None]
    prompt = Prompt.of([(90, 60, 1), (40, 40, 0)], mask_input=previous, multimask=False)
    _check_equal(backend.predict(embedding, prompt), _direct(direct, prompt, mask_input=previous, multimask=False))


def test_one_embedding_serves_clicks_while_another_image_is_encoded(sam):
    """The decoder reads the cached embedding, never the encoder's current image."""
    _, backend, embedding, _ = sam
    prompt = Prompt.of([(40, 40, 1)])
    before = backend.predict(embedding, prompt)
    backend.set_image(sample_image(seed=5)[::-1].copy())
    after = backend.predict(embedding, prompt)
    assert np.array_equal(before.masks, after.masks)


def test_sam2_config_from_file_name_and_shapes(tmp_path):
    from segstudio.inference.prompting.sam2 import config_for

    assert config_for(tmp_path / "sam2.1_hiera_tiny.pt", None, None) == "configs/sam2.1/sam2.1_hiera_t.yaml"
    assert config_for(tmp_path / "sam2_hiera_large.pt", None, None) == "configs/sam2/sam2_hiera_l.yaml"
    assert config_for(tmp_path / "x.pt", None, "sam2.1_hiera_b+") == "configs/sam2.1/sam2.1_hiera_b+.yaml"
    assert config_for(tmp_path / "x.pt", None, "small") == "configs/sam2.1/sam2.1_hiera_s.yaml"
    with pytest.raises(CheckpointError, match="which SAM 2 size"):
        config_for(tmp_path / "weights.pt", {}, None)


def test_sam_architecture_read_from_the_weights(sam):
    from segstudio.inference.checkpoints import load_state_dict_file
    from segstudio.inference.prompting.sam import sam_architecture

    path = sam[0]
    assert sam_architecture(load_state_dict_file(path)) == {
        "encoder_embed_dim": 32, "encoder_depth": 2, "encoder_num_heads": 2, "encoder_global_attn_indexes": [1]}


def test_wrong_weights_are_a_checkpoint_error(tmp_path, sam):
    import torch

    bad = tmp_path / "sam_bad.pth"
    torch.save({"image_encoder.patch_embed.proj.weight": torch.zeros(4, 3, 16, 16)}, bad)
    backend = registry.open_backend(f"sam:{bad}")
    with pytest.raises(CheckpointError, match="not a Segment Anything checkpoint"):
        backend.set_image(sample_image())
    backend = registry.open_backend(f"sam2:{sam[0]}:sam2.1_hiera_t")      # SAM weights, SAM 2 config
    with pytest.raises(CheckpointError, match="do not fit the config"):
        backend.set_image(sample_image())


def test_registry_names_the_file_to_fetch_offline(tmp_path):
    with pytest.raises(CheckpointError) as info:
        registry.parse_spec("sam:vit_b", weights_dir=tmp_path)
    message = str(info.value)
    assert "sam_vit_b_01ec64.pth" in message and "https://dl.fbaipublicfiles.com/segment_anything/" in message
    assert "nothing is downloaded" in message
    (tmp_path / "sam2.1_hiera_tiny.pt").write_bytes(b"")
    spec = registry.parse_spec("sam2:tiny", weights_dir=tmp_path)
    assert spec.path == tmp_path / "sam2.1_hiera_tiny.pt" and spec.config == "configs/sam2.1/sam2.1_hiera_t.yaml"


def test_spec_parsing(tmp_path):
    weights = tmp_path / "m.pt"
    weights.write_bytes(b"")
    assert registry.parse_spec("grabcut").family == "grabcut"
    assert registry.parse_spec(f"sam2:{weights}:sam2.1_hiera_s") == registry.PromptSpec("sam2", weights, "sam2.1_hiera_s")
    assert registry.parse_spec(f"sam2:{weights}") == registry.PromptSpec("sam2", weights, None)
    with pytest.raises(CheckpointError, match="model file not found"):
        registry.parse_spec(f"sam:{tmp_path / 'missing.pth'}")
    with pytest.raises(CheckpointError, match="must be 'grabcut'"):
        registry.parse_spec("unet:foo")


def test_missing_package_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "installed", lambda module: module not in ("segment_anything", "sam2"))
    weights = tmp_path / "m.pth"
    weights.write_bytes(b"")
    for spec in (f"sam:{weights}", f"sam2:{weights}"):
        with pytest.raises(registry.MissingPackageError, match=r"pip install segstudio\[sam\]"):
            registry.open_backend(spec)
    real = registry.importlib.import_module

    def without_sam(name):
        if name.split(".")[0] in ("segment_anything", "sam2"):
            raise ImportError(f"No module named '{name}'")
        return real(name)

    monkeypatch.setattr(registry.importlib, "import_module", without_sam)
    with pytest.raises(registry.MissingPackageError, match=r"pip install segstudio\[sam\]"):
        registry.require("segment_anything.build_sam")


def test_opening_a_sam_backend_imports_nothing_heavy(tmp_path):
    """The GUI opens the backend on its own thread: torch and the package load on first use only."""
    import subprocess
    import sys

    weights = tmp_path / "m.pth"
    weights.write_bytes(b"")
    script = ("import sys; from segstudio.inference.prompting.registry import open_backend; "
              f"b = open_backend('sam:{weights}'); print(b.model_id); "
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'segment_anything', 'sam2')))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
