"""How many findings a run writes per cause: one fault should be one finding, two faults two.

The faults are the switches of :mod:`benchmarks.diagnosis`'s port (a time-step-loop port of the
layers written for that benchmark alone, sharing no code with the harness), each alone (one
cause: every finding past the first is a split) and in pairs chosen, before any run, as faults
that show in different parts of the space and can leave the same signature (two causes: one
finding is a merge). Each candidate gets one ``fuzz-birnn run`` of the agreement property over
the modes it shows in, padded input, float64 and float32, no projection.

Usage: ``python benchmarks/causes.py [MAX_EXAMPLES] [--seed S]`` (default 1500, seed 0); run it
in a worktree of an older commit (``git worktree add``) for the figures before a change.
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.diagnosis import BUGS, port
from fuzz_birnn.campaign.api import run
from fuzz_birnn.core.space import CaseSpace

#: pairs of switches that need different parts of the space to show (a given h0, a bias, two
#: layers, ...), chosen before any run
PAIRS = [
    ("h0-ignored", "hidden-bias-twice"),
    ("no-re-reverse", "h0-ignored"),
    ("h0-direction-major", "hidden-bias-twice"),
    ("last-h_n-copied-from-layer-0", "hidden-bias-twice"),
    ("no-re-reverse", "hidden-bias-twice"),
]
SINGLES = [bug for bug in BUGS if not bug.endswith("(LSTM)")]


class _Switches(str):
    """Several of the port's switches at once: equal to each of them."""

    names: frozenset[str]

    def __new__(cls, names: tuple[str, ...]) -> _Switches:
        switches = super().__new__(cls, "+".join(names))
        switches.names = frozenset(names)
        return switches

    def __eq__(self, other: object) -> bool:
        return other in self.names

    def __ne__(self, other: object) -> bool:
        return other not in self.names

    __hash__ = str.__hash__


def _attribute(bugs: tuple[str, ...]) -> str:
    return "bugs__" + "__".join(bug.replace("-", "_") for bug in bugs)


_BY_ATTRIBUTE = {_attribute(bugs): bugs for bugs in [*((bug,) for bug in SINGLES), *PAIRS]}


def __getattr__(name: str):  # the workers import each candidate by name: benchmarks.causes:bugs__...
    if name not in _BY_ATTRIBUTE:
        raise AttributeError(name)
    return port(_Switches(_BY_ATTRIBUTE[name]))


def _modes(bugs: tuple[str, ...]) -> list[str]:
    shared = set.intersection(*(set(BUGS[bug][1]) for bug in bugs))
    return [mode for mode in ("RNN_TANH", "GRU", "LSTM") if mode in shared]


def main() -> None:
    warnings.filterwarnings("ignore")
    numbers = [a for a in sys.argv[1:] if a.isdigit()]
    examples = int(numbers[0]) if numbers else 1500
    seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 0
    space = CaseSpace(forms=("padded",), dtypes=("float64", "float32"), proj=False)
    print(f"{examples} examples per search, seed {seed}, agreement, padded input, float64/float32")
    print(f"{'candidate':<56} {'causes':>6} {'findings':>8}  seconds  needs")
    exact = total = 0
    for bugs in [*((bug,) for bug in SINGLES), *PAIRS]:
        started = time.monotonic()
        with tempfile.TemporaryDirectory() as reports:
            record = run(f"benchmarks.causes:{_attribute(bugs)}", properties=["agreement"], modes=_modes(bugs),
                         space=space, max_examples=examples, seed=seed, database="none", reports=reports,
                         workers=2)
        found = len(record.findings)
        needs = "; ".join(",".join(getattr(f, "needs", None) or ()) or "-" for f in record.findings)
        exact += found == len(bugs)
        total += 1
        print(f"{' + '.join(bugs):<56} {len(bugs):>6} {found:>8}  {time.monotonic() - started:7.1f}  {needs}",
              flush=True)
    print(f"one finding per cause: {exact} of {total} candidates")


if __name__ == "__main__":
    main()
