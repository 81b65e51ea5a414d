"""One decoding step (one new token per row) of a Llama model on a CPU, in plain tensor calls.

transformers' forward spends a fixed time in Python per layer and step whatever the batch, a large share of a CPU
step (docs/decisions/003-plain-calls-decoding.md). This makes the same tensor calls in the same order, so the logits are
the same bit for bit, without the module machinery. Prompts (several new tokens per row) keep the model's forward.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Self, cast

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DynamicCache
from transformers.models.llama.modeling_llama import LlamaDecoderLayer, LlamaForCausalLM, LlamaRMSNorm

from runner.weights.fusing import MergedProjections
from runner.weights.half_weights import Float16WeightLinear
from runner.weights.packing import PackedLinear

Linear = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class _Norm:
    weight: torch.Tensor
    eps: float

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        """LlamaRMSNorm.forward, call for call."""
        dtype = hidden.dtype
        hidden = hidden.to(torch.float32)
        variance = hidden.pow(2).mean(-1, keepdim=True)
        hidden = hidden * torch.rsqrt(variance + self.eps)
        return self.weight * hidden.to(dtype)


@dataclass(frozen=True)
class _Layer:
    input_norm: _Norm
    qkv: Linear
    qkv_sizes: list[int]
    o_proj: Linear
    post_norm: _Norm
    gate_up: Linear
    gate_up_sizes: list[int]
    act: Callable[[torch.Tensor], torch.Tensor]
    down: Linear


class LlamaDecodeStep:
    """The decoding step of one loaded LlamaForCausalLM whose q/k/v and gate/up projections were merged."""

    def __init__(self, model: LlamaForCausalLM, layers: list[_Layer], head: Linear) -> None:
        config = model.config
        self.embed = model.model.embed_tokens
        self.rotary = model.model.rotary_emb
        self.layers = layers
        self.norm = _norm(model.model.norm)
        self.head = head
        self.heads = int(config.num_attention_heads)
        self.kv_heads = int(config.num_key_value_heads or config.num_attention_heads)
        attention = model.model.layers[0].self_attn
        self.head_dim = attention.head_dim
        self.scaling = attention.scaling

    @classmethod
    def build(cls, model: nn.Module) -> Self | None:
        """The step for `model`, or None where it is not a plain sdpa Llama with merged projections on a CPU (such
        a model decodes through its own forward)."""
        if type(model) is not LlamaForCausalLM or model.device.type != "cpu":
            return None
        config = model.config
        if config._attn_implementation != "sdpa" or not config.num_key_value_heads:
            return None
        layers = []
        for layer in model.model.layers[: config.num_hidden_layers]:
            built = _layer(layer)
            if built is None:
                return None
            layers.append(built)
        head = _linear(model.lm_head)
        if head is None or type(model.model.norm) is not LlamaRMSNorm:
            return None
        return cls(model, layers, head)

    def logits(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor, cache: DynamicCache
    ) -> torch.Tensor:
        """Logits [rows, vocab] of the next token of each row, from its last token [rows, 1]; the cache grows by it.

        The mask and the attention call are the ones transformers picks for a single query: none when no row has
        padding (grouped-query attention in SDPA), else a boolean mask with each group's query heads side by side.
        """
        rows = input_ids.shape[0]
        hidden = self.embed(input_ids)
        cos, sin = self.rotary(hidden, position_ids)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        hidden = hidden.view(rows, -1)
        padded = not bool(attention_mask.all())
        mask = attention_mask.bool()[:, None, None, :] if padded else None
        query_shape = (rows, self.kv_heads, self.heads // self.kv_heads, self.head_dim) if padded else None
        for index, layer in enumerate(self.layers):
            residual = hidden
            q, k, v = torch.split(layer.qkv(layer.input_norm(hidden)), layer.qkv_sizes, dim=-1)
            q = _rotated(q.view(rows, self.heads, 1, self.head_dim), cos, sin)
            k = _rotated(k.view(rows, self.kv_heads, 1, self.head_dim), cos, sin)
            keys, values = cache.update(k, v.view(rows, self.kv_heads, 1, self.head_dim), index)
            if query_shape is None:
                attended = F.scaled_dot_product_attention(q, keys, values, scale=self.scaling, enable_gqa=True)
            else:
                q = q.reshape(query_shape)
                attended = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=self.scaling)
            hidden = residual + layer.o_proj(attended.reshape(rows, -1))
            residual = hidden
            gate, up = torch.split(layer.gate_up(layer.post_norm(hidden)), layer.gate_up_sizes, dim=-1)
            hidden = residual + layer.down(layer.act(gate) * up)
        return self.head(self.norm(hidden))


def _rotated(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """apply_rotary_pos_emb for one of q or k, call for call."""
    half = x.shape[-1] // 2
    return (x * cos) + (torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin)


def _layer(layer: nn.Module) -> _Layer | None:
    if type(layer) is not LlamaDecoderLayer:
        return None
    attention, mlp = layer.self_attn, layer.mlp
    qkv = getattr(attention, "q_k_v_merged", None)
    gate_up = getattr(mlp, "gate_up_merged", None)
    if not isinstance(qkv, MergedProjections) or not isinstance(gate_up, MergedProjections):
        return None
    linears = (_linear(qkv.linear), _linear(attention.o_proj), _linear(gate_up.linear), _linear(mlp.down_proj))
    norms = (layer.input_layernorm, layer.post_attention_layernorm)
    if any(linear is None for linear in linears) or any(type(norm) is not LlamaRMSNorm for norm in norms):
        return None
    qkv_linear, o_proj, gate_up_linear, down = cast(tuple[Linear, Linear, Linear, Linear], linears)
    return _Layer(
        _norm(norms[0]), qkv_linear, qkv.sizes, o_proj, _norm(norms[1]), gate_up_linear, gate_up.sizes, mlp.act_fn, down
    )


def _norm(module: nn.Module) -> _Norm:
    return _Norm(cast(torch.Tensor, module.weight), float(cast(float, module.variance_epsilon)))


def _linear(module: nn.Module) -> Linear | None:
    """The layer's own forward, called without the module-call machinery around it."""
    if type(module) in (PackedLinear, Float16WeightLinear, nn.Linear):
        return cast(Linear, module.forward)
    return None
