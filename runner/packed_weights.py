"""On a CPU, every linear layer's weight reordered once into oneDNN's blocked layout, and multiplied by oneDNN.

torch's plain `F.linear` calls MKL's sgemm, which re-reads the weight in its row-major layout at every call;
oneDNN's kernels read a layout blocked for the CPU's vector registers, packed once at load (the same
`mkldnn::_reorder_linear_weight` / `_linear_pointwise` pair that torch.compile's CPU backend uses for frozen
weights). Measured on this project's 2-core AMD EPYC (AVX2), float32, one matmul of M rows:

                                 F.linear    packed
    576 -> 1536, M=16            328 us      227 us
    576 -> 49152 (LM head), 16   32.9 ms     14.7 ms
    576 -> 49152 (LM head), 1    11.3 ms     7.8 ms

and with the built-in model through the runner's engine (64 new tokens, greedy), 1 / 16 / 32 sequences at once:
11.3 / 82.1 / 105.0 tok/s plain, 18.3 / 126.2 / 151.2 tok/s packed. Each row's result also stops depending on
how many rows share the matmul (it does with MKL), so a job's answer is the same in any batch.

Only float32: oneDNN's bfloat16 path needs AVX512 or AVX-NE-CONVERT. GPUs and other dtypes keep torch's own.
"""

from __future__ import annotations

import logging
from typing import cast

import torch
from torch import nn

from runner.errors import one_line

log = logging.getLogger(__name__)


class PackedLinear(nn.Module):
    """A bias-optional linear layer whose weight lives only in oneDNN's packed layout."""

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
