"""Memory freed between live blocks (as packing leaves the original weights) is handed back to the OS."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import gc, sys
sys.path.insert(0, {root!r})
import torch
from runner.weights.freed_memory import return_freed_memory

def resident_mib():
    status = open("/proc/self/status").read().split()
    return int(status[status.index("VmRSS:") + 1]) // 1024

big = torch.ones(2 * 2**20)
del big  # 8 MiB freed: glibc now keeps blocks up to that size on its heap
freed, kept = [], []
for _ in range(100):  # 4 MiB blocks, each followed by a small one that stays, as packed weights do
    freed.append(torch.ones(2**20))
    kept.append(torch.ones(1024))
del freed
gc.collect()
before = resident_mib()
returned = return_freed_memory()
print(before, resident_mib(), returned)
"""


def test_memory_freed_between_live_blocks_leaves_the_resident_set() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(root=str(ROOT))], capture_output=True, text=True, check=True
    )
    before, after, returned = done.stdout.split()
    assert returned == "True"
    assert int(before) - int(after) >= 300, f"resident {before} MiB before, {after} MiB after"
