"""The mask decoder's fast path (inference/prompting/fast_decoder.py) against the packages' own method."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from segstudio.core.prompting.types import Prompt
from segstudio.inference.prompting import registry
from segstudio.inference.prompting.fast_decoder import FastMaskDecoding
from tests.inference.prompt_models import sample_image, tiny_sam, tiny_sam2

pytest.importorskip("segment_anything")
pytest.importorskip("sam2")


def _decoder_inputs(prompt_encoder, seed: int, mask: bool, box_batch: int = 1):
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(1, 256, 64, 64, generator=g)
    points = (torch.rand(box_batch, 3, 2, generator=g) * 1024, torch.tensor([[1, 0, 1]] * box_batch))
    masks = torch.randn(box_batch, 1, 256, 256, generator=g) if mask else None
    sparse, dense = prompt_encoder(points=points, boxes=None, masks=masks)
    return image, prompt_encoder.get_dense_pe(), sparse, dense


@pytest.mark.parametrize("mask", [False, True], ids=["clicks", "clicks+mask"])
def test_sam_predict_masks_equals_the_packages(tmp_path, mask):
    _, model = tiny_sam(tmp_path)
    decoder = model.mask_decoder
    fast = FastMaskDecoding(decoder, model.prompt_encoder, sdpa=False)
    assert fast.usable
    with torch.inference_mode():
        for seed in range(3):
            image, pe, sparse, dense = _decoder_inputs(model.prompt_encoder, seed, mask)
            theirs = decoder.predict_masks(image, pe, sparse, dense)
            ours = fast.predict_masks(image, pe, sparse, dense)
            for a, b in zip(ours, theirs):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mask", [False, True], ids=["clicks", "clicks+mask"])
def test_sam2_predict_masks_equals_the_packages(tmp_path, mask):
    _, _, model = tiny_sam2(tmp_path)
    decoder = model.sam_mask_decoder
    fast = FastMaskDecoding(decoder, model.sam_prompt_encoder, sdpa=True)
    assert fast.usable and fast.high_res
    g = torch.Generator().manual_seed(7)
    high_res = [torch.randn(1, 32, 256, 256, generator=g), torch.randn(1, 64, 128, 128, generator=g)]
    with torch.inference_mode():
        for seed in range(3):
            image, pe, sparse, dense = _decoder_inputs(model.sam_prompt_encoder, seed, mask)
            theirs = decoder.predict_masks(image, pe, sparse, dense, False, high_res)
            ours = fast.predict_masks(image, pe, sparse, dense, False, high_res)
            assert len(ours) == len(theirs) == 4
            for a, b in zip(ours, theirs):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_a_batch_of_prompts_takes_the_packages_own_method(tmp_path):
    _, model = tiny_sam(tmp_path)
    decoder = model.mask_decoder
    fast = FastMaskDecoding(decoder, model.prompt_encoder, sdpa=False)
    calls = []
    fast.upstream = lambda *args: calls.append(args) or ("upstream",)
    with torch.inference_mode():
        image, pe, sparse, dense = _decoder_inputs(model.prompt_encoder, 0, False, box_batch=2)
        assert fast.predict_masks(image, pe, sparse, dense) == ("upstream",)
    assert len(calls) == 1


def _count_calls(module) -> list:
    calls = []
    module.register_forward_hook(lambda *_: calls.append(1))
    return calls


@pytest.mark.parametrize("family", ["sam", "sam2"])
def test_first_layer_image_side_is_computed_once_per_image(tmp_path, family):
    """Clicks on one image reuse the first layer's image-side projections; another image gets its own
    (and alternating images never serve one image's cache to the other)."""
    if family == "sam":
        from segment_anything import SamPredictor

        path, model = tiny_sam(tmp_path)
        backend = registry.open_backend(f"sam:{path}")
        direct = SamPredictor(model)
    else:
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        path, config, model = tiny_sam2(tmp_path)
        backend = registry.open_backend(f"sam2:{path}:{config}")
        direct = SAM2ImagePredictor(model)
    images = [sample_image(seed=0), sample_image(seed=3)[::-1].copy()]
    embeddings = [backend.set_image(image) for image in images]
    decoder_model = backend.backend._decoder.model
    decoder = decoder_model.mask_decoder if family == "sam" else decoder_model.sam_mask_decoder
    assert isinstance(decoder.predict_masks.__self__, FastMaskDecoding)
    k_proj = _count_calls(decoder.transformer.layers[0].cross_attn_token_to_image.k_proj)
    prompts = [Prompt.of([(40, 40, 1)]), Prompt.of([(40, 40, 1), (90, 60, 0)])]
    for prompt in prompts:
        backend.predict(embeddings[0], prompt)
    assert len(k_proj) == 1
    for index in (1, 0, 1):
        direct.set_image(images[index])
        for prompt in prompts:
            ours = backend.predict(embeddings[index], prompt)
            theirs = direct.predict(point_coords=prompt.points, point_labels=prompt.labels, multimask_output=True)
            assert np.array_equal(ours.masks, theirs[0].astype(bool))
    assert len(k_proj) == 4
