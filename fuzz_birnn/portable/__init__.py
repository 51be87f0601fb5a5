"""The files copied beside every report's ``repro.py``: they must run on a bare torch install.

Each module here imports the standard library and torch, nothing else (not hypothesis, not the rest
of fuzz-birnn: an import-linter contract in ``pyproject.toml`` and ``tests/test_layers.py`` hold
them to it). The library imports the same files, so a report replays with the library's own code.

* :mod:`.calls`: building a call (constructor arguments, placement, the CPU backend switch) and
  reading its result (structure, per-direction values, the NaN-aware error).
* :mod:`.report_files`: reading a report safely (size limits, strict JSON, safetensors without
  pickle, whose candidate code may run).
* ``repro.py``: the reproducer itself, copied as is (a script, not imported by the library).
"""
