"""Baselines: what torch computed on a fixed corpus, stored, and what changed since
(:mod:`.baselines`; the command line is :mod:`fuzz_birnn.cli.baseline`)."""

from fuzz_birnn.baseline.baselines import (
    SCHEMA_VERSION,
    VERDICTS,
    BaselineError,
    Comparison,
    compare,
    corpus,
    load_baseline,
    record,
    write_baseline,
)

__all__ = ["SCHEMA_VERSION", "VERDICTS", "BaselineError", "Comparison", "compare", "corpus", "load_baseline",
           "record", "write_baseline"]
