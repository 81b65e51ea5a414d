"""On a CPU, every float32 linear layer's weight reordered once into oneDNN's blocked layout, and multiplied by oneDNN.

torch's `F.linear` (MKL) re-reads the row-major weight at every call, and a row's result depends on its batch
neighbours; packed, neither (README, Benchmarks). Only float32: oneDNN's bfloat16 needs AVX512 or AVX-NE-CONVERT.
"""

from __future__ import annotations

import logging
from typing import cast

import torch
from torch import nn

from runner.errors import one_line

log = logging.getLogger(__name__)


class PackedLinear(nn.Module):
    """A bias-optional linear layer whose weight lives only in oneDNN's packed layout.

    The `_reorder_linear_weight` / `_linear_pointwise` pair is what torch.compile's CPU backend uses for frozen weights.
    """

    def __init__(self, linear: nn.Linear, rows_hint: int) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        # Not a parameter: an opaque oneDNN tensor that state_dict() and .to() must not touch.
        self.packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), rows_hint)
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], ""))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def pack_linear_layers(model: nn.Module, rows_hint: int) -> bool:
    """Replaces every plain float32 nn.Linear of a CPU model by a PackedLinear; False (and nothing changed) if
    this torch or CPU cannot. `rows_hint`: the rows a matmul usually has (the batch size), which picks the layout.
    """
    linears = [
        (name, module)
        for name, module in model.named_modules()
        if type(module) is nn.Linear and module.weight.device.type == "cpu" and module.weight.dtype == torch.float32
    ]
    if not linears or not torch.backends.mkldnn.is_available():  # type: ignore[no-untyped-call]
        return False
    try:
        packed = {name: PackedLinear(module, max(1, rows_hint)) for name, module in linears}
        probe = torch.randn(2, linears[0][1].in_features)
        with torch.inference_mode():
            torch.testing.assert_close(packed[linears[0][0]](probe), linears[0][1](probe), rtol=1e-3, atol=1e-3)
    except (RuntimeError, AssertionError) as exc:
        log.warning("linear layers stay unpacked: oneDNN could not pack them here (%s)", one_line(exc))
        return False
    for name, layer in packed.items():
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, layer)
    return True
