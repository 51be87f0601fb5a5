"""Old module names, kept importable: before 0.2 every module sat directly in ``fuzz_birnn/``.

Reports written before then name them (a report's ``repro.py`` imports the built-in candidates as
``fuzz_birnn.decomposition:decomposed`` and ``fuzz_birnn.reference:reference``), and so may a
user's code. Importing an old name gives the module at its new place, the same object.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types

__all__ = ["MOVED", "install"]

#: Old module (under ``fuzz_birnn.``) -> where it lives now.
MOVED = {
    "arguments": "cli.arguments",
    "backends": "properties.backends",
    "baseline_commands": "cli.baseline",
    "capture": "processes.capture",
    "candidates": "core.candidates",
    "case": "core.case",
    "check": "core.check",
    "compare": "core.compare",
    "database": "campaign.database",
    "decomposition": "core.decomposition",
    "devices": "core.devices",
    "engine": "campaign.engine",
    "evaluation": "core.evaluation",
    "files": "output.files",
    "gradients": "properties.gradients",
    "invalid": "properties.invalid",
    "isolate": "processes.forked",
    "junit": "output.junit",
    "layout": "core.layout",
    "lifeline": "processes.lifeline",
    "metamorphic": "properties.relations",
    "mistakes": "diagnosis.mistakes",
    "outcomes": "core.outcomes",
    "page_commands": "cli.pages",
    "pages": "output.pages",
    "pictures": "output.pictures",
    "reducer": "campaign.reducer",
    "reference": "core.reference",
    "reports": "output.reports",
    "repro_support": "portable.report_files",
    "reproducer": "core.reproducer",
    "runrecord": "output.run_record",
    "scheduler": "campaign.scheduler",
    "signature": "campaign.signature",
    "standalone": "portable.calls",
    "writeahead": "campaign.writeahead",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``fuzz_birnn.OLD`` and loads it as the module at its new place."""

    def find_spec(self, fullname: str, path: object = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != __package__ or name not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return importlib.import_module(f"{__package__}.{MOVED[spec.name.rpartition('.')[2]]}")

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: the module at its new place is already loaded."""


class _Package(types.ModuleType):
    """The package, whose public names (``check``, ``reference``) an old module name never shadows.

    Importing ``fuzz_birnn.check`` would otherwise set the package's ``check`` to that module."""

    def __setattr__(self, name: str, value: object) -> None:
        public = self.__dict__.get("_PUBLIC", {})
        if name in public and isinstance(value, types.ModuleType) and value.__name__ != f"{self.__name__}.{name}":
            return  # fuzz_birnn.check stays the function; fuzz_birnn.engine (not public) is the module
        super().__setattr__(name, value)


def install() -> None:
    """Make the old names importable (once)."""
    sys.modules[__package__].__class__ = _Package
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.append(_Alias())
