"""The ``fuzz-birnn`` command: ``run`` and ``replay`` (:mod:`.main`), ``baseline`` (:mod:`.baseline`),
``show`` and ``explain`` (:mod:`.pages`), with the argument types they share (:mod:`.arguments`)."""

from fuzz_birnn.cli.main import main

__all__ = ["main"]
