"""Instruction-set levels: the CPU kernels torch and oneDNN would run on an older CPU, reached on
this one by capping both libraries when a process starts.

torch's own kernels pick their level once, when torch loads, from the CPU, unless
``ATEN_CPU_CAPABILITY`` caps it (``default``, ``avx2``, ``avx512``: what
``torch.backends.cpu.get_cpu_capability()`` then reports); oneDNN picks its own, unless
``ONEDNN_MAX_CPU_ISA`` (``DNNL_MAX_CPU_ISA`` in older releases) caps it (``SSE41``, ``AVX2``,
``AVX512_CORE``, ...). A level here sets both. Levels are x86's; elsewhere (ARM, POWER) only the
machine's own runs.
"""

from __future__ import annotations

from fuzz_birnn.core.devices import cpu_capability
from fuzz_birnn.portable.report_files import ISA_CAPS

__all__ = ["LEVELS", "NATIVE", "caps", "levels_here", "native_level"]

#: From the highest to the baseline.
LEVELS = ("avx512", "avx2", "default")
#: The name a run gives the machine's own level (no caps).
NATIVE = "native"

#: torch's names for them (``NO AVX``: the baseline before torch 2.5 or so)
_FROM_CAPABILITY = {"AVX512": "avx512", "AVX2": "avx2", "DEFAULT": "default", "NO AVX": "default"}


def native_level() -> str | None:
    """This process's level as torch reports it (``None``: not an x86 level)."""
    return _FROM_CAPABILITY.get(cpu_capability().upper())


def levels_here() -> list[str]:
    """The levels this machine runs: its own, then every lower one."""
    native = native_level()
    return [] if native is None else list(LEVELS[LEVELS.index(native):])


def caps(level: str) -> dict[str, str]:
    """The environment a process must start with to run at ``level``."""
    return dict(ISA_CAPS[level])
