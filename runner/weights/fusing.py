"""Projections that read the same input merged into one linear layer: q/k/v of each attention layer and gate/up of
each MLP, so a decoding step makes three matmuls per layer fewer, each larger
(docs/decisions/011-merged-projections.md).

The model's own forward code still calls q_proj, k_proj and v_proj one after the other with the same tensor; each
is a slice of the merged layer, which computes all of them at the first call and hands out the rest from there.
"""

from __future__ import annotations

import torch
from torch import nn

GROUPS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))
"""The projections merged where a module has all of them, the first one called first by the model's forward."""


class MergedProjections(nn.Module):
    """One linear layer holding several projections' weights, and the outputs of its last input until all are
    taken (so they are freed within the layer that made them)."""

    def __init__(self, linears: list[nn.Linear]) -> None:
        super().__init__()
        first = linears[0]
        self.sizes = [linear.out_features for linear in linears]
        self.linear = nn.Linear(first.in_features, sum(self.sizes), bias=first.bias is not None)
        self.linear.to(device=first.weight.device, dtype=first.weight.dtype)
        with torch.no_grad():
            self.linear.weight.copy_(torch.cat([linear.weight for linear in linears]))
            if first.bias is not None:
                self.linear.bias.copy_(torch.cat([linear.bias for linear in linears]))
        self._last = _LastInput()

    def output(self, x: torch.Tensor, index: int) -> torch.Tensor:
        last = self._last
        if x is not last.input or not last.left:
            last.outputs = list(self.linear(x).split(self.sizes, dim=-1))
            last.input, last.left = x, len(self.sizes)
        last.left -= 1
        out = last.outputs[index]
        if not last.left:
            last.input, last.outputs = None, []
        return out


class _LastInput:
    """The merged layer's last input and the outputs not yet taken, in a plain object: nn.Module's __setattr__
    is far slower than a plain object's, and runs hundreds of times a step
    (docs/decisions/011-merged-projections.md)."""

    def __init__(self) -> None:
        self.input: torch.Tensor | None = None
        self.outputs: list[torch.Tensor] = []
        self.left = 0


class ProjectionSlice(nn.Module):
    """Stands where one of the merged projections was; its output is a view of the merged layer's."""

    def __init__(self, merged: MergedProjections, index: int) -> None:
        super().__init__()
        object.__setattr__(self, "merged", merged)  # not a submodule: the parent holds it once
        self.index = index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        merged: MergedProjections = self.__dict__["merged"]
        return merged.output(x, self.index)


def merge_projections(model: nn.Module) -> int:
    """Merges every group of plain linear projections that share an input and a dtype; returns how many groups."""
    merged = 0
    for module in list(model.modules()):
        for names in GROUPS:
            linears = [getattr(module, name, None) for name in names]
            if not all(type(linear) is nn.Linear for linear in linears):
                continue
            layers: list[nn.Linear] = linears  # type: ignore[assignment]
            first = layers[0]
            if any(
                layer.in_features != first.in_features
                or layer.weight.dtype != first.weight.dtype
                or (layer.bias is None) != (first.bias is None)
                for layer in layers
            ):
                continue
            group = MergedProjections(layers)
            module.add_module("_".join(name.removesuffix("_proj") for name in names) + "_merged", group)
            for index, name in enumerate(names):
                setattr(module, name, ProjectionSlice(group, index))
            merged += 1
    return merged
