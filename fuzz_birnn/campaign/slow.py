"""Slow-target mode: what a time budget buys when each case costs a second or more.

A target that takes seconds a case (a remote runtime, a simulator, a conversion a case) gets a
few dozen cases per search in a budget of minutes, so where they go matters more than how many
there are. Once the first slices of a run say its candidate takes at least
:data:`SLOW_CASE_SECONDS` a case (:func:`is_slow`, from worker time per case checked, under a time
budget only: without one every search runs to its quota anyway), the scheduler and the slices:

* **agreement first**: the agreement searches are served as if their time counted
  :data:`OTHERS_WEIGHT` times less, so they get that much more of the budget (a relation or an
  invalid call shows a fault the agreement search usually finds too, later and less plainly);
* **small cases first**: a search's slices up to number ``SMALL_SLICES + 1`` (the first is
  planned before anything is known of the candidate's speed) draw, once it is slow, from
  :func:`small_space` (two layers, three steps, a batch of two, sizes up to three), where a case
  is fast and a fault is already near its simplest form;
* **a new fault's shrinking before more cases of known ones, in few calls**: a new fault is
  not shrunk by Hypothesis (whose shrinker calls the candidate hundreds of times) but reduced
  field by field (:func:`~fuzz_birnn.campaign.reducer.reduce_case`, the crash reducer's
  proposals: everything at its simplest at once, then each size to 1, halfway, one less, then
  each flag; a call a proposal, each in a forked child where the candidate allows it, keeping
  the fault's signature and staying off known faults, ending 1-minimal in every field), for up
  to :func:`shrink_seconds` (a quarter of what is left of the budget, at least the search's
  share). A slice that measures its own candidate slow (its checked cases so far, when it finds
  its first fault) reduces too, before the scheduler knows, but within the ordinary share of
  shrinking, so that every search still gets its turn. A fault whose reduction was cut short
  is not known to its search, whose next slice finds and reduces it again from its own first
  failing case;
* **a fault found once, shrunk once**: a fault another layer type's search of the same property
  has found counts as known here (where the case has what it needs), instead of being found
  and shrunk again in each layer type (a fault that shows only in this layer type, with the
  same signature and needs, is then taken for it);
* **known faults skipped cheaply**: a drawn case that has every feature a known fault of the
  search needs in order to show (:mod:`fuzz_birnn.campaign.needs`, needs measured and not
  empty) is not checked; it counts as not compared, "has what a known fault needs"; never more
  of them than cases checked in the slice.

The run's notes say the mode is on, and why.
"""

from __future__ import annotations

import dataclasses

from fuzz_birnn.core.space import CaseSpace

__all__ = [
    "OTHERS_WEIGHT",
    "SKIPPED_AS_KNOWN",
    "SLOW_CASE_SECONDS",
    "SMALL_SLICES",
    "is_slow",
    "shrink_seconds",
    "small_space",
]

#: Worker seconds a checked case from which a candidate is slow.
SLOW_CASE_SECONDS = 0.25
#: How many times less a non-agreement search's time counts for its turn than an agreement one's.
OTHERS_WEIGHT = 2.0
#: Slices of a slow search, after its first, that draw small cases.
SMALL_SLICES = 3
#: The reason a slow slice's case that meets a known fault's needs is counted under.
SKIPPED_AS_KNOWN = "has what a known fault needs (slow target: not checked)"


def is_slow(seconds: float, cases: int) -> bool:
    """Whether ``cases`` checked in ``seconds`` of worker time make a slow candidate."""
    return cases > 0 and seconds / cases >= SLOW_CASE_SECONDS


def small_space(space: CaseSpace) -> CaseSpace:
    """``space`` with at most two layers, three steps, a batch of two and sizes of three (never
    below its own minimums)."""
    def capped(low: int, high: int, cap: int) -> int:
        return max(low, min(high, cap))
    return dataclasses.replace(
        space,
        max_layers=capped(space.min_layers, space.max_layers, 2),
        max_seq_len=capped(space.min_seq_len, space.max_seq_len, 3),
        max_batch=capped(space.min_batch, space.max_batch, 2),
        max_input_size=capped(space.min_input_size, space.max_input_size, 3),
        max_hidden_size=capped(space.min_hidden_size, space.max_hidden_size, 3),
    )


def shrink_seconds(left: float, share: float) -> float:
    """How long a slow slice may shrink a new fault: a quarter of the ``left`` budget, at least
    the search's ``share`` of the whole."""
    return max(share, left / 4)
