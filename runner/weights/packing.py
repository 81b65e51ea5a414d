"""On a CPU, every float32 or bfloat16 linear layer's weight reordered once into oneDNN's blocked layout, and
multiplied by oneDNN; or, when asked, float32 layers' weights held in float16 for fbgemm (half_weights.py).

torch's `F.linear` re-reads the row-major weight at every call; packed, it does not
(docs/decisions/001-packed-linear-weights.md). oneDNN packs bfloat16 only on CPUs with AVX-512 (BW, VL, DQ) or
AVX-NE-CONVERT; elsewhere the layers stay as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import cast

import torch
from torch import nn

from runner.errors import one_line
from runner.weights.half_weights import Float16WeightLinear

log = logging.getLogger(__name__)

PACKABLE = (torch.float32, torch.bfloat16)
TOLERANCE = {torch.float32: 1e-3, torch.bfloat16: 2e-2}
"""How far a packed layer's result may be from the unpacked one's in the check at packing: bfloat16 keeps 8 bits
of mantissa, and the two compute paths round at different steps."""
FLOAT16_WEIGHTS_TOLERANCE = 1e-2
"""The same for float16 weights: each weight rounded to 11 bits of mantissa, the sums kept float32."""


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


def pack_linear_layers(model: nn.Module, rows_hint: int, *, float16_weights: bool = False) -> bool:
    """Replaces every plain float32 or bfloat16 nn.Linear of a CPU model by a PackedLinear (or, with
    `float16_weights`, every float32 one by a Float16WeightLinear, falling back to PackedLinear where fbgemm cannot);
    False (and nothing changed) if this torch or CPU cannot. `rows_hint`: the rows a matmul usually has (the batch
    size), which picks oneDNN's layout.
    """
    linears = [
        (name, module)
        for name, module in model.named_modules()
        if type(module) is nn.Linear and module.weight.device.type == "cpu" and module.weight.dtype in PACKABLE
    ]
    if not linears:
        return False
    if float16_weights:
        failure = _replace(model, linears, Float16WeightLinear, FLOAT16_WEIGHTS_TOLERANCE)
        if failure is None:
            return True
        log.warning("float16 weights are not possible here (%s): the weights stay float32", failure)
    if not torch.backends.mkldnn.is_available():  # type: ignore[no-untyped-call]
        return False
    tolerance = TOLERANCE[linears[0][1].weight.dtype]
    failure = _replace(model, linears, lambda linear: PackedLinear(linear, max(1, rows_hint)), tolerance)
    if failure is not None:
        log.warning("linear layers stay unpacked: oneDNN could not pack them here (%s)", failure)
    return failure is None


def _replace(
    model: nn.Module, linears: list[tuple[str, nn.Linear]], make: Callable[[nn.Linear], nn.Module], tolerance: float
) -> str | None:
    """Replaces each linear by `make(linear)` once all are made and the first computes what it did; else (nothing
    replaced) says why not."""
    try:
        made = {name: make(module) for name, module in linears}
        first_name, first = linears[0]
        probe = torch.randn(2, first.in_features, dtype=first.weight.dtype)
        with torch.inference_mode():
            torch.testing.assert_close(made[first_name](probe), first(probe), rtol=tolerance, atol=tolerance)
    except (RuntimeError, ValueError, AssertionError) as exc:
        return one_line(exc)
    for name, layer in made.items():
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, layer)
    return None
