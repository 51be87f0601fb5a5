"""Which devices and CPU backends this machine offers."""

from __future__ import annotations

import functools
import os
import socket

import torch

from fuzz_birnn.portable.report_files import device_available

__all__ = ["DEVICE_TYPES", "DISPATCH_CAPS", "available_devices", "cpu_capability", "cpu_dispatch", "cuda_without_gpu",
           "device_available", "environment_summary", "hostname"]

#: Environment variables, read once when torch loads, that cap the instruction set its CPU kernels use.
DISPATCH_CAPS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")


#: The device types a case may name (``cuda:N`` is a ``cuda`` device).
DEVICE_TYPES = ("cpu", "cuda", "mps")


@functools.cache
def available_devices() -> tuple[str, ...]:
    """``cpu`` always, then ``cuda`` and ``mps`` where torch reports them available.

    Asked once per process: the answer does not change while it runs, and asking costs a driver
    call on CUDA builds.
    """
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return tuple(devices)


def environment_summary() -> str:
    """One line for logs and pytest headers: torch version, devices, oneDNN state."""
    onednn = "available" if torch.backends.mkldnn.is_available() else "unavailable"
    if torch.backends.mkldnn.is_available():
        onednn += ", enabled" if torch.backends.mkldnn.enabled else ", disabled"
    summary = f"torch {torch.__version__}; devices: {', '.join(available_devices())}; oneDNN: {onednn}"
    note = cuda_without_gpu()
    return f"{summary}; {note}" if note else summary


def cuda_without_gpu() -> str | None:
    """Says so when torch was built with CUDA but sees no GPU (only the CPU gets checked)."""
    if torch.version.cuda and "cuda" not in available_devices():
        return f"a CUDA {torch.version.cuda} build of torch with no GPU visible: only the CPU is checked"
    return None


def cpu_capability() -> str:
    """The instruction-set level torch's own CPU kernels run at here (``AVX512``, ``AVX2``, ``DEFAULT``, ...)."""
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):  # torch before 2.1 does not say
        return "unknown"


def hostname() -> str:
    return socket.gethostname()


def cpu_dispatch() -> dict[str, object]:
    """What chose this process's CPU kernels: the instruction-set caps set at start, the level
    torch's own kernels run at, whether oneDNN has bfloat16 here, the intra-op threads, and the
    lines of ``torch.__config__.show()`` that name the CPU features and libraries."""
    try:
        bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        bf16 = None
    config = [line.strip() for line in torch.__config__.show().splitlines()
              if any(word in line for word in ("CPU capability", "oneDNN", "MKL", "OpenMP", "LAPACK"))
              and "Build settings" not in line]
    return {"caps": {name: os.environ[name] for name in DISPATCH_CAPS if name in os.environ},
            "cpu_capability": cpu_capability(), "onednn_bf16": bf16, "threads": torch.get_num_threads(),
            "config": config}
