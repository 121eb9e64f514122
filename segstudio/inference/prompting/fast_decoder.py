"""The SAM / SAM 2 mask decoder's ``predict_masks`` without its CPU-bound detours, same maths.

Per click, upstream ``MaskDecoder.predict_masks`` spends most of its time on memory layout, not on
arithmetic: the image tokens travel through the two-way transformer as a permuted view (every add,
projection and layer norm on them copies or strides), the two 2x2 stride-2 transposed convolutions
take oneDNN's slow path on that layout, and the first layer recomputes, for every click, projections of
the image side that do not depend on the prompt. This module runs the same modules and the same
operations in the same order with four changes (ADR 0025):

* the image tokens are made contiguous once, ``(1, HW, C)``; what does not depend on the prompt
  (the positional encoding as tokens, SAM 2's skip features in the layout below) is arranged once
  per image;
* without a mask input (a first click) the first layer's image-side projections (keys and values
  of the token-to-image attention, queries of the image-to-token attention) are computed once per
  image and reused for every such click on it;
* the image-to-token attention (4,096 queries, a handful of keys) takes its softmax over the keys
  with the queries contiguous, a vectorised reduction instead of one over a last dimension of ~8;
* each 2x2 stride-2 transposed convolution (no overlap: every output pixel is one input pixel times
  a matrix) is one matrix product per pixel, kept in a blocked layout until the masks are formed.

The results equal upstream's to float rounding (the mask logits to ~1e-6; tests compare masks pixel
for pixel with the packages' own predictors). Batched prompts (several boxes at once) go to
upstream's method unchanged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["FastMaskDecoding"]


def _heads(x: torch.Tensor, n: int) -> torch.Tensor:
    b, t, c = x.shape
    return x.reshape(b, t, n, c // n).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    b, n, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, n * d)


def _pixel_matrix(conv) -> tuple[torch.Tensor, torch.Tensor]:
    """A 2x2 stride-2 ``ConvTranspose2d`` as ``(C_in, 2*2*C_out)`` weights and bias, (di, dj, c) order."""
    c_in, c_out = conv.weight.shape[:2]
    weight = conv.weight.permute(0, 2, 3, 1).reshape(c_in, 4 * c_out).contiguous()
    return weight, conv.bias.repeat(4)


def _is_pixel_deconv(conv) -> bool:
    return (isinstance(conv, torch.nn.ConvTranspose2d) and tuple(conv.kernel_size) == (2, 2)
            and tuple(conv.stride) == (2, 2) and tuple(conv.padding) == (0, 0)
            and tuple(conv.output_padding) == (0, 0) and conv.groups == 1
            and tuple(conv.dilation) == (1, 1) and conv.bias is not None)


def _activate(act, x: torch.Tensor) -> torch.Tensor:
    if isinstance(act, torch.nn.GELU):
        return torch.ops.aten.gelu_(x, approximate=act.approximate)
    return act(x)


@dataclass
class _FirstLayer:
    """The first layer's image side without a mask input: the same for every such click on an image."""

    src: torch.Tensor               # (1, HW, C) image tokens + the no-mask embedding
    keys_pe: torch.Tensor           # src + positional encoding
    k: torch.Tensor                 # token-to-image keys and values
    v: torch.Tensor
    q: torch.Tensor                 # image-to-token queries


@dataclass
class _ImageSide:
    """What the decoder needs of one image whatever the prompt."""

    held: tuple                     # the inputs, held so that their addresses cannot be reused
    key: tuple
    pe: torch.Tensor                # (1, HW, C) positional encoding
    high_res: tuple | None          # SAM 2's skip features, blocked, with the convolution biases added
    first: _FirstLayer | None = None


class FastMaskDecoding:
    """Installed as ``decoder.predict_masks`` of a private model instance (see the module docstring).

    ``sdpa``: the package's attention core (SAM 2 calls ``F.scaled_dot_product_attention``, SAM
    writes the softmax out); the same one is used here so that the rounding matches.
    """

    def __init__(self, decoder, prompt_encoder, sdpa: bool):
        self.decoder = decoder
        self.no_mask = prompt_encoder.no_mask_embed.weight
        self.sdpa = sdpa
        self.upstream = decoder.predict_masks
        up = decoder.output_upscaling
        self.sam2 = hasattr(decoder, "pred_obj_scores")     # SAM 2's decoder: its signature and outputs
        self.obj_token = bool(getattr(decoder, "pred_obj_scores", False))
        self.high_res = bool(getattr(decoder, "use_high_res_features", False))
        convs = (up[0], up[3])
        self.usable = (len(up) == 5 and all(_is_pixel_deconv(c) for c in convs)
                       and hasattr(up[1], "eps") and len(decoder.transformer.layers) > 0)
        if self.usable:
            self.dc1, self.dc2 = (_pixel_matrix(c) for c in convs)
        self._image: _ImageSide | None = None

    def install(self) -> None:
        if self.usable:
            self.decoder.predict_masks = self.predict_masks

    # -- attention and transformer ------------------------------------------------------------
    def _attend(self, att, q, k, v):
        """``att`` on already projected q, k, v."""
        n = att.num_heads
        q, k, v = _heads(q, n), _heads(k, n), _heads(v, n)
        if q.shape[2] > 64 * k.shape[2]:
            # image-to-token: thousands of queries, a few keys. The softmax runs over the keys
            # with the queries contiguous (vectorised), not over a last dimension of ~8.
            attn = (k @ q.transpose(-1, -2)) / math.sqrt(q.shape[-1])
            out = torch.softmax(attn, dim=-2).transpose(-1, -2) @ v
        elif self.sdpa:
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            attn = q @ k.permute(0, 1, 3, 2)
            attn = attn / math.sqrt(q.shape[-1])
            out = torch.softmax(attn, dim=-1) @ v
        return att.out_proj(_merge_heads(out))

    def _block(self, layer, queries, keys, query_pe, key_pe, first: _FirstLayer | None):
        t2i, i2t = layer.cross_attn_token_to_image, layer.cross_attn_image_to_token
        if layer.skip_first_layer_pe:
            queries = layer.self_attn(q=queries, k=queries, v=queries)
        else:
            q = queries + query_pe
            queries = queries + layer.self_attn(q=q, k=q, v=queries)
        queries = layer.norm1(queries)
        q = queries + query_pe
        if first is not None:
            keys_pe, k_img, v_img = first.keys_pe, first.k, first.v
        else:
            keys_pe = keys + key_pe
            k_img, v_img = t2i.k_proj(keys_pe), t2i.v_proj(keys)
        queries = layer.norm2(queries + self._attend(t2i, t2i.q_proj(q), k_img, v_img))
        queries = layer.norm3(queries + layer.mlp(queries))
        q = queries + query_pe
        q_img = first.q if first is not None else i2t.q_proj(keys_pe)
        keys = layer.norm4(keys + self._attend(i2t, q_img, i2t.k_proj(q), i2t.v_proj(queries)))
        return queries, keys

    def _transformer(self, src, pe, tokens, first: _FirstLayer | None):
        tr = self.decoder.transformer
        queries, keys = tokens, src
        for i, layer in enumerate(tr.layers):
            queries, keys = self._block(layer, queries, keys, tokens, pe, first if i == 0 else None)
        q = queries + tokens
        k = keys + pe
        queries = tr.norm_final_attn(queries + tr.final_attn_token_to_image(q=q, k=k, v=keys))
        return queries, keys

    # -- the image side -----------------------------------------------------------------------
    @staticmethod
    def _tokens(x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).transpose(1, 2).contiguous()

    def _image_side(self, image_embeddings, image_pe, high_res_features) -> _ImageSide:
        # Embeddings are inference tensors (never written after the encoder made them); holding them
        # keeps their addresses theirs. The positional encoding depends on the model alone.
        key = (image_embeddings.data_ptr(), tuple(image_embeddings.shape), tuple(image_embeddings.stride()),
               tuple(t.data_ptr() for t in high_res_features or ()))
        if self._image is None or self._image.key != key:
            self._image = None
            high_res = self._blocked_high_res(high_res_features) if self.high_res else None
            self._image = _ImageSide((image_embeddings, *(high_res_features or ())), key,
                                     self._tokens(image_pe), high_res)
        return self._image

    def _first_layer(self, image: _ImageSide, image_embeddings) -> _FirstLayer:
        if image.first is None:
            layer = self.decoder.transformer.layers[0]
            dense = self.no_mask.reshape(1, -1, 1, 1).expand(*image_embeddings.shape)
            src = self._tokens(image_embeddings + dense)
            keys_pe = src + image.pe
            image.first = _FirstLayer(src, keys_pe, layer.cross_attn_token_to_image.k_proj(keys_pe),
                                      layer.cross_attn_token_to_image.v_proj(src),
                                      layer.cross_attn_image_to_token.q_proj(keys_pe))
        return image.first

    def _blocked_high_res(self, high_res_features):
        """SAM 2's stride-4 and stride-8 features in the layouts the upscaling produces, plus the
        biases of the convolutions whose outputs they are added to."""
        feat_s0, feat_s1 = high_res_features
        c1, h2, w2 = feat_s1.shape[1:]
        s1 = feat_s1[0].reshape(c1, h2 // 2, 2, w2 // 2, 2).permute(1, 3, 2, 4, 0)
        c0, h4, w4 = feat_s0.shape[1:]
        s0 = feat_s0[0].reshape(c0, h4 // 4, 2, 2, w4 // 4, 2, 2).permute(1, 4, 2, 5, 3, 6, 0)
        s0 = (s0 + self.dc2[1].view(2, 2, c0)).contiguous().view(-1, 4 * c0)
        s1 = (s1 + self.dc1[1].view(2, 2, c1)).contiguous().view(-1, 4 * c1)
        return s0, s1

    def _is_no_mask(self, dense: torch.Tensor) -> bool:
        return dense.data_ptr() == self.no_mask.data_ptr() and dense.stride()[-2:] == (0, 0)

    # -- upscaling ----------------------------------------------------------------------------
    def _upscale(self, keys, h, w, high_res):
        """The output upscaling on ``(1, HW, C)`` tokens: ``(H, W, 2, 2, 2, 2, C_out)`` blocked.

        ``high_res``: SAM 2's skip features as ``(pixels, 2*2*C)`` matrices with each convolution's
        bias already added (the matrix product accumulates onto them); otherwise the biases alone."""
        _dc1, ln1, act1, _dc2, act2 = self.decoder.output_upscaling
        (weight1, bias1), (weight2, bias2) = self.dc1, self.dc2
        start1, start2 = (high_res[1], high_res[0]) if high_res is not None else (bias1, bias2)
        x = torch.addmm(start1, keys[0], weight1).view(h, w, 2, 2, -1)
        # LayerNorm2d over the channels, written as the packages write it, in place where it can be
        d = x - x.mean(-1, keepdim=True)
        x = d.div_(torch.sqrt(d.pow(2).mean(-1, keepdim=True) + ln1.eps)).mul_(ln1.weight).add_(ln1.bias)
        x = _activate(act1, x)
        x = torch.addmm(start2, x.view(-1, x.shape[-1]), weight2)
        return _activate(act2, x.view(h, w, 2, 2, 2, 2, -1))

    # -- the method ---------------------------------------------------------------------------
    def predict_masks(self, image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings,
                      repeat_image: bool = True, high_res_features=None):
        if sparse_prompt_embeddings.size(0) != 1 or image_embeddings.size(0) != 1:
            if self.sam2:
                return self.upstream(image_embeddings, image_pe, sparse_prompt_embeddings,
                                     dense_prompt_embeddings, repeat_image, high_res_features)
            return self.upstream(image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings)
        dec = self.decoder
        obj = self.obj_token
        parts = ([dec.obj_score_token.weight] if obj else []) + [dec.iou_token.weight, dec.mask_tokens.weight]
        tokens = torch.cat((torch.cat(parts, dim=0).unsqueeze(0), sparse_prompt_embeddings), dim=1)
        h, w = image_embeddings.shape[-2:]
        image = self._image_side(image_embeddings, image_pe, high_res_features)
        if self._is_no_mask(dense_prompt_embeddings):
            first = self._first_layer(image, image_embeddings)
            src = first.src
        else:
            first = None
            src = self._tokens(image_embeddings + dense_prompt_embeddings)
        hs, keys = self._transformer(src, image.pe, tokens, first)
        s = 1 if obj else 0
        mask_tokens_out = hs[:, s + 1:s + 1 + dec.num_mask_tokens, :]
        upscaled = self._upscale(keys, h, w, image.high_res)
        hyper_in = torch.stack([mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(dec.output_hypernetworks_mlps)],
                               dim=1)
        n = hyper_in.shape[1]
        masks = (upscaled.reshape(-1, upscaled.shape[-1]) @ hyper_in[0].T).view(h, w, 2, 2, 2, 2, n)
        masks = masks.permute(6, 0, 2, 4, 1, 3, 5).reshape(1, n, 4 * h, 4 * w)
        iou_pred = dec.iou_prediction_head(hs[:, s, :])
        if not self.sam2:
            return masks, iou_pred
        if obj:
            object_score_logits = dec.pred_obj_score_head(hs[:, 0, :])
        else:
            object_score_logits = 10.0 * iou_pred.new_ones(iou_pred.shape[0], 1)
        return masks, iou_pred, mask_tokens_out, object_score_logits
