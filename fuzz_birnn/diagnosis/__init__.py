"""Which mistake a failing result is: a catalogue of mistakes people make (:mod:`.mistakes`),
run on the failing case and named when one reproduces the result (:mod:`.diagnose`)."""

from fuzz_birnn.diagnosis.diagnose import Diagnosis, diagnose

__all__ = ["Diagnosis", "diagnose"]
