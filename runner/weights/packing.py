"""On a CPU, every float32 or bfloat16 linear layer's weight reordered once into oneDNN's blocked layout, and
multiplied by oneDNN.

torch's `F.linear` re-reads the row-major weight at every call; packed, it does not (README, Benchmarks). oneDNN
packs bfloat16 only on CPUs with AVX-512 (BW, VL, DQ) or AVX-NE-CONVERT; elsewhere the layers stay as they are.
"""

from __future__ import annotations

import logging
from typing import cast

import torch
from torch import nn

from runner.errors import one_line

log = logging.getLogger(__name__)

PACKABLE = (torch.float32, torch.bfloat16)
TOLERANCE = {torch.float32: 1e-3, torch.bfloat16: 2e-2}
"""How far a packed layer's result may be from the unpacked one's in the check at packing: bfloat16 keeps 8 bits
of mantissa, and the two compute paths round at different steps."""


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
    """Replaces every plain float32 or bfloat16 nn.Linear of a CPU model by a PackedLinear; False (and nothing
    changed) if this torch or CPU cannot. `rows_hint`: the rows a matmul usually has (the batch size), which
    picks the layout.
    """
    linears = [
        (name, module)
        for name, module in model.named_modules()
        if type(module) is nn.Linear and module.weight.device.type == "cpu" and module.weight.dtype in PACKABLE
    ]
    if not linears or not torch.backends.mkldnn.is_available():  # type: ignore[no-untyped-call]
        return False
    try:
        packed = {name: PackedLinear(module, max(1, rows_hint)) for name, module in linears}
        first = linears[0][1]
        probe = torch.randn(2, first.in_features, dtype=first.weight.dtype)
        tolerance = TOLERANCE[first.weight.dtype]
        with torch.inference_mode():
            torch.testing.assert_close(packed[linears[0][0]](probe), first(probe), rtol=tolerance, atol=tolerance)
    except (RuntimeError, AssertionError) as exc:
        log.warning("linear layers stay unpacked: oneDNN could not pack them here (%s)", one_line(exc))
        return False
    for name, layer in packed.items():
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, layer)
    return True
