"""Whether this CPU computes bfloat16 natively, and whether fbgemm can multiply by float16 weights here: read from
its flags, since torch's own checks cannot tell the first.

`torch.ops.mkldnn._is_mkldnn_bf16_supported()` is true on AVX-512 CPUs that only emulate bfloat16, and
`torch.backends.cpu.get_cpu_capability()` says just "AVX512"; the flags `avx512_bf16` (Zen 4 and 5, Cooper Lake
and later) and `amx_bf16` (Sapphire Rapids and later) are what make bfloat16 matmuls faster than float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
FLOAT16_WEIGHT_FLAGS = frozenset({"avx2", "fma", "f16c"})
"""What fbgemm's float16-weight matmul needs: F16C converts the weights, AVX2 and FMA multiply in float32."""
CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class CpuFeatures:
    model: str
    flags: frozenset[str]

    @property
    def native_bf16(self) -> str | None:
        """The flag that gives native bfloat16, or None."""
        return next((flag for flag in NATIVE_BF16_FLAGS if flag in self.flags), None)

    @property
    def float16_weights(self) -> bool:
        """Whether fbgemm can multiply float32 inputs by float16 weights here."""
        return self.flags >= FLOAT16_WEIGHT_FLAGS

    def summary(self) -> str:
        """For start-up lines and benchmark headers: the CPU and what decides its dtype."""
        shown = [flag for flag in ("avx2", "f16c", "avx512f", *NATIVE_BF16_FLAGS) if flag in self.flags]
        return f"{self.model} ({' '.join(shown) or 'no AVX2'})"


def read_cpu_features(cpuinfo: Path = CPUINFO) -> CpuFeatures:
    """The first processor's model name and flags; unknown (no flags) where /proc/cpuinfo is missing."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return CpuFeatures("unknown CPU", frozenset())
    model, flags = "unknown CPU", frozenset[str]()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "model name" and model == "unknown CPU":
            model = value.strip()
        elif name.strip() in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    return CpuFeatures(model, flags)
