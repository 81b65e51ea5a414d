"""The key/value cache of a batch that sequences join and leave between decoding steps (continuous batching).

Rebuilt only when rows join or leave, with room for the steps in between: transformers' DynamicLayer copies the
whole cache at every step with torch.cat (docs/decisions/008-continuous-batching-engine.md).
"""

from __future__ import annotations

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

FixedStates = dict[int, tuple[torch.Tensor, torch.Tensor] | None]
"""The fixed layers' keys and values [rows, heads, positions, dim], by layer index; None where no row has any."""


class RollingBatch:
    """The running rows' cache, attention mask and next input token; row order is the order rows joined in.

    Rows are left-padded to one length, as `model.generate` pads a static batch: a row's real tokens are always the
    rightmost ones, so a newcomer is padded on the left to the batch's length (or the batch to the newcomer's), and
    once the rows that started first have left, the columns that only held their tokens are cut off again. (A row
    may also have padding inside: between the prompt start all rows share, read once, and the rest of its prompt.)
    """

    def __init__(self, fixed_layers: frozenset[int] = frozenset()) -> None:
        self.fixed_layers = fixed_layers
        """Layers whose cache holds what the rows attend to besides their tokens (Mllama's cross-attention layers:
        the states of a row's images), read at every step and never grown. Rows join them zero-padded on the right
        (a row with no images has zero keys and values there, which add nothing to its hidden state); a fixed layer
        stays empty while no row has any, and the model then skips it, as it does for a text-only job alone."""
        self.clear()

    def clear(self) -> None:
        """Drops every row."""
        self.cache: DynamicCache | None = None
        self.fixed: FixedStates = {}
        self.fixed_lengths: list[int] = []
        """Each row's own positions in the fixed layers (0: it has none), in row order."""
        self.mask = torch.zeros(0, 0, dtype=torch.long)
        """1 where a row has a real token, 0 for padding; one column per cached position."""
        self.next_ids = torch.zeros(0, 1, dtype=torch.long)
        """The token each row feeds the model at the next step (the one it sampled last)."""

    @property
    def rows(self) -> int:
        return int(self.mask.shape[0])

    @property
    def length(self) -> int:
        """Cached positions per row, padding included: what the cache holds is rows x length tokens."""
        return int(self.mask.shape[1])

    def join(self, cache: DynamicCache, mask: torch.Tensor, next_ids: torch.Tensor, room: int) -> None:
        """Adds prefilled rows (their own cache, left-padded among themselves) after the running ones.

        `room`: decoding steps to reserve memory for (the fewest tokens any row may still generate).
        """
        if self.fixed_layers:
            self._join_fixed(cache, int(mask.shape[0]))
        if self.cache is None:
            states = cache_states(cache, self.fixed_layers)
            self.cache, self.mask, self.next_ids = _roomy(states, room, self.fixed), mask, next_ids
            return
        length = max(self.length, int(mask.shape[1]))
        layers = [
            (_joined(old_keys, new_keys, length), _joined(old_values, new_values, length))
            for (old_keys, old_values), (new_keys, new_values) in zip(
                cache_states(self.cache, self.fixed_layers), cache_states(cache, self.fixed_layers), strict=True
            )
        ]
        self.cache = _roomy(layers, room, self.fixed)
        self.mask = torch.cat([_left_pad(self.mask, length, 1), _left_pad(mask, length, 1)])
        self.next_ids = torch.cat([self.next_ids, next_ids])

    def step_inputs(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Extends the mask by the column the next tokens go in; returns (input ids, attention mask, positions)."""
        self.mask = torch.cat([self.mask, self.mask.new_ones(self.rows, 1)], dim=1)
        positions = self.mask.sum(dim=1, keepdim=True) - 1
        return self.next_ids, self.mask, positions

    def keep(self, rows: list[int], room: int) -> None:
        """Drops every row not in `rows` (indices in row order), then the columns no remaining row uses."""
        if len(rows) == self.rows:
            return
        if not rows:
            self.clear()
            return
        assert self.cache is not None
        index = torch.tensor(rows, dtype=torch.long, device=self.mask.device)
        self.mask, self.next_ids = self.mask[index], self.next_ids[index]
        # A key's position is in its rotary embedding, not its column: dropping padding columns changes nothing.
        columns = (self.mask.sum(dim=0) > 0).nonzero().squeeze(1)
        self.mask = self.mask[:, columns]
        kept = [
            (keys[index][:, :, columns], values[index][:, :, columns])
            for keys, values in cache_states(self.cache, self.fixed_layers)
        ]
        if self.fixed_layers:
            self._keep_fixed(rows, index)
        self.cache = _roomy(kept, room, self.fixed)

    @property
    def fixed_length(self) -> int:
        """Positions per row in the fixed layers: the most any row has."""
        return max(self.fixed_lengths, default=0)

    def _join_fixed(self, cache: DynamicCache, rows: int) -> None:
        new = {index: _fixed_states(cache, index) for index in self.fixed_layers}
        lengths = {int(states[0].shape[2]) for states in new.values() if states is not None}
        self.fixed_lengths += [max(lengths, default=0)] * rows
        if self.cache is None:
            self.fixed = new
            return
        self.fixed = {index: _fixed_joined(self.fixed[index], new[index], self.rows, rows) for index in new}

    def _keep_fixed(self, rows: list[int], index: torch.Tensor) -> None:
        """The kept rows' fixed states, cut to the longest a kept row has (none when no kept row has any)."""
        self.fixed_lengths = [self.fixed_lengths[row] for row in rows]
        longest = self.fixed_length
        self.fixed = {
            layer: (states[0][index][:, :, :longest], states[1][index][:, :, :longest])
            if states is not None and longest
            else None
            for layer, states in self.fixed.items()
        }


class _RoomyLayer(DynamicLayer):
    """One layer's keys and values [rows, heads, positions, dim], in buffers with room for more positions."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, room: int) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True
        self._reserve(keys, values, room)

    def _reserve(self, keys: torch.Tensor, values: torch.Tensor, room: int) -> None:
        rows, heads, length, dim = keys.shape
        self._key_buffer = keys.new_empty(rows, heads, length + room, dim)
        self._value_buffer = values.new_empty(rows, heads, length + room, dim)
        self._key_buffer[:, :, :length] = keys
        self._value_buffer[:, :, :length] = values
        self.keys, self.values, self.length = self._key_buffer[:, :, :length], self._value_buffer[:, :, :length], length

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object, **kwargs: object
    ) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.length + key_states.shape[-2]
        if end > self._key_buffer.shape[2]:  # more steps than reserved for: grow, as DynamicLayer always does
            self._reserve(self._key_buffer[:, :, : self.length], self._value_buffer[:, :, : self.length], 64)
        self._key_buffer[:, :, self.length : end] = key_states
        self._value_buffer[:, :, self.length : end] = value_states
        self.keys, self.values, self.length = self._key_buffer[:, :, :end], self._value_buffer[:, :, :end], end
        return self.keys, self.values


def _roomy(states: list[tuple[torch.Tensor, torch.Tensor]], room: int, fixed: FixedStates) -> DynamicCache:
    # Only full-attention layers, whatever the model's config says: sliding-window models stay correct (their
    # mask still limits attention), merely without that layer type's memory saving.
    cache = DynamicCache()
    layers: list[DynamicLayer] = [_RoomyLayer(keys, values, room) for keys, values in states]
    for index in sorted(fixed):
        held = fixed[index]
        layers.insert(index, DynamicLayer() if held is None else _RoomyLayer(held[0], held[1], 0))  # type: ignore[no-untyped-call]
    cache.layers = layers  # type: ignore[assignment]
    return cache


def cache_states(
    cache: DynamicCache, fixed_layers: frozenset[int] = frozenset()
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each layer's cached keys and values, [rows, heads, positions, dim] each, but the fixed layers'."""
    layers = [layer for index, layer in enumerate(cache.layers) if index not in fixed_layers]
    states = [
        (layer.keys, layer.values)
        for layer in layers
        if isinstance(layer, DynamicLayer) and layer.keys is not None and layer.values is not None
    ]
    if len(states) != len(layers):
        # A TypeError is a generation error: the jobs fail with this reason, the runner stays up.
        raise TypeError("continuous batching needs a model whose every layer caches keys and values")
    return states


def _fixed_states(cache: DynamicCache, index: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A fixed layer's keys and values, None where the model skipped it (no row has images)."""
    layer = cache.layers[index] if index < len(cache.layers) else None
    if not isinstance(layer, DynamicLayer) or layer.keys is None or layer.values is None or not layer.keys.numel():
        return None
    return layer.keys, layer.values


def _fixed_joined(
    old: tuple[torch.Tensor, torch.Tensor] | None,
    new: tuple[torch.Tensor, torch.Tensor] | None,
    old_rows: int,
    new_rows: int,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Both rows' fixed states, padded with zeros on the right to the longer (rows without any: all zeros)."""
    if old is None and new is None:
        return None
    like = old[0] if old is not None else new[0]  # type: ignore[index]
    length = max(int(states[0].shape[2]) for states in (old, new) if states is not None)

    def padded(states: tuple[torch.Tensor, torch.Tensor] | None, rows: int, which: int) -> torch.Tensor:
        if states is None:
            return like.new_zeros(rows, like.shape[1], length, like.shape[3])
        tensor = states[which]
        return torch.nn.functional.pad(tensor, (0, 0, 0, length - tensor.shape[2]))

    return tuple(  # type: ignore[return-value]
        torch.cat([padded(old, old_rows, which), padded(new, new_rows, which)]) for which in (0, 1)
    )


def _left_pad(tensor: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    missing = length - tensor.shape[dim]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def _joined(old: torch.Tensor, new: torch.Tensor, length: int) -> torch.Tensor:
    """Cached states [rows, heads, positions, dim] of both, padded on the left to `length` positions."""
    return torch.cat([_left_pad(old, length, 2), _left_pad(new, length, 2)])
