"""Hands the memory freed while loading back to the operating system.

Packing replaces each layer's row-major weight by a packed copy made beside it, so the freed originals end up
between live blocks, where glibc keeps them mapped: the runner's resident memory counts them until it exits
(docs/decisions/013-returning-freed-memory.md). `malloc_trim` returns those pages.
"""

from __future__ import annotations

import ctypes
import ctypes.util


def return_freed_memory() -> bool:
    """True if the C library returned some; False where it cannot (no glibc: musl, macOS)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return False
    return bool(trim(0))
