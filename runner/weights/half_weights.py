"""On a CPU without native bfloat16, linear weights kept in float16 and multiplied in float32 by fbgemm.

A decoding step reads every weight once, so halving their bytes speeds it up where reading them is what takes
the time (docs/decisions/010-float16-weights.md). The products and sums stay float32; only each weight is rounded
to float16's 11-bit mantissa, once, at load.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

FLOAT16_MAX = torch.finfo(torch.float16).max


def float16_weights_available() -> bool:
    """fbgemm (x86 builds of torch) is what multiplies float32 inputs by float16 weights."""
    return "fbgemm" in torch.backends.quantized.supported_engines


class Float16WeightLinear(nn.Module):
    """A float32 linear layer whose weight is held only in fbgemm's packed float16 layout (bias kept float32)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach()
        if weight.dtype != torch.float32:
            raise ValueError(f"float16 weights need a float32 layer, not {weight.dtype}")
        largest = float(weight.abs().max())
        if largest > FLOAT16_MAX:  # fbgemm would clamp it silently
            raise ValueError(f"a weight of magnitude {largest:g} does not fit float16")
        bias = None if linear.bias is None else linear.bias.detach()
        # Not a parameter: an opaque fbgemm object (bias inside) that state_dict() and .to() must not touch.
        self.packed = torch.ops.quantized.linear_prepack_fp16(weight, bias)
        self.has_bias = bias is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, torch.ops.quantized.linear_dynamic_fp16(x, self.packed))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.has_bias}"
