"""``fuzz_birnn.run``: a whole campaign from Python, the same as ``fuzz-birnn run`` (which calls it).

::

    import fuzz_birnn
    from fuzz_birnn.core.space import CaseSpace

    record = fuzz_birnn.run("mypkg.rnn:my_stack", modes=["LSTM"], space=CaseSpace(dtypes=("float32",)),
                            max_examples=2000, reports="reports")
    assert record.exit_code == 0, [finding.signature for finding in record.findings]

A bad setting raises :class:`RunError` with a one-line message before any search starts.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path

from fuzz_birnn.campaign.cluster import ClusterError, RayPool, needs_of
from fuzz_birnn.campaign.database import DatabaseError, check_database, describe_database
from fuzz_birnn.campaign.engine import Campaign, plan_searches
from fuzz_birnn.campaign.scheduler import most_slices, shard_of
from fuzz_birnn.core.case import MODES
from fuzz_birnn.core.devices import available_devices, environment_summary
from fuzz_birnn.core.isa import LEVELS, NATIVE, levels_here, native_level
from fuzz_birnn.core.space import CaseSpace
from fuzz_birnn.output.run_record import RunOptions, RunRecord, write_record
from fuzz_birnn.properties import PROPERTIES, default_properties
from fuzz_birnn.targets import TARGETS
from fuzz_birnn.targets.naming import CandidateError, load_candidate, validate_spec

__all__ = ["DEFAULT_MAX_EXAMPLES", "RunError", "run"]

#: Cases generated in all (split over the searches) when nothing else is said.
DEFAULT_MAX_EXAMPLES = 25_000
#: Seconds allowed for one case, unless the target says otherwise.
DEFAULT_TIMEOUT = 60


class RunError(ValueError):
    """A setting the run cannot start with; the message says which and what to do, in one line."""


def run(candidate: str | None = None, *, properties: Sequence[str] | None = None, modes: Sequence[str] = MODES,
        space: CaseSpace | None = None, max_examples: int = DEFAULT_MAX_EXAMPLES, time_budget: float | None = None,
        timeout: float | None = None, workers: int | None = None, seed: int | None = None,
        database: str | None = None, reports: str | Path = "reports", shard: tuple[int, int] | None = None,
        grad: bool = False, cluster: str | None = None, needs: Sequence[str] = (), isa: Sequence[str] | None = None,
        echo: Callable[[str], None] = lambda line: None,
        on_progress: Callable[[Campaign], None] = lambda campaign: None) -> RunRecord:
    """Search every (property, mode) for cases where ``candidate`` (``None``: torch itself) is wrong;
    write a report per fault and ``run.json`` under ``reports``; return the run's record.

    ``candidate`` is a name the worker processes can import: a built-in (``decomposed``), a target
    (``onnxruntime``) or ``MODULE:ATTR``. ``properties`` defaults to every one that applies
    (gradients with ``grad``); ``space`` narrows the cases (:class:`~fuzz_birnn.core.space.CaseSpace`);
    ``space`` defaults to everything :func:`~fuzz_birnn.strategies.cases` draws, on every device
    this machine has (the command draws on the CPU unless ``--devices`` says otherwise);
    ``database`` is a directory, a Redis URL or ``"none"`` (default ``REPORTS/.hypothesis``);
    ``isa`` names the instruction-set levels at which the properties that check torch's own kernels
    are searched (``native``: the machine's own; default: it and every lower level this machine
    reaches, :mod:`fuzz_birnn.core.isa`); given, the candidate's properties are searched at those
    levels too (a candidate whose kernels dispatch on the CPU's instruction set).
    ``shard=(K, N)`` runs the K-th of N deterministic shares of the searches; ``cluster`` (a Ray
    address: ``auto``, ``HOST:PORT``, ``ray://HOST:PORT``) runs the workers on that cluster's nodes,
    the candidate's searches only on nodes with the Ray resources ``needs``
    (:mod:`fuzz_birnn.campaign.cluster`). ``echo`` gets the
    header lines a console shows; ``on_progress`` the campaign, about once a second. Ctrl-C
    (KeyboardInterrupt) ends the run early with a record of what ran.
    """
    space = space or CaseSpace()
    reports = Path(reports)
    _writable(reports)
    if candidate is not None:
        try:
            load_candidate(validate_spec(candidate))  # fail here, not in every worker
        except CandidateError as error:
            raise RunError(str(error)) from None
    unknown_modes = [mode for mode in modes if mode not in MODES]
    if unknown_modes or not modes:
        raise RunError(f"modes {','.join(unknown_modes) or '(none)'}: choose from {','.join(MODES)}")
    properties = list(properties or default_properties(candidate, grad))
    unknown = [p for p in properties if p not in PROPERTIES]
    if unknown:
        raise RunError(f"--properties {','.join(unknown)}: choose from {','.join(PROPERTIES)}")
    if timeout is None:
        timeout = TARGETS[candidate].timeout if candidate in TARGETS else DEFAULT_TIMEOUT
    # absolute, so that a cluster's workers use the same path, not one under their own directory
    database = database if database is not None else str((reports / ".hypothesis").absolute())
    try:
        check_database(database)  # an unreachable Redis is said now, not by every worker
    except DatabaseError as error:
        raise RunError(str(error)) from None
    if needs and cluster is None:
        raise RunError(f"--needs {','.join(needs)}: places searches on a cluster's nodes; give --cluster too")
    pool = _cluster(cluster, workers, reports) if cluster is not None else None
    try:
        levels = _levels(isa, pool)
        return _run(pool, candidate, properties, modes, space, max_examples, time_budget, timeout, workers, seed,
                    database, reports, shard, tuple(needs), levels, isa is not None, echo, on_progress)
    finally:
        if pool is not None:
            pool.stop()


def _run(pool: RayPool | None, candidate: str | None, properties: list[str], modes: Sequence[str],
         space: CaseSpace, max_examples: int, time_budget: float | None, timeout: float, workers: int | None,
         seed: int | None, database: str, reports: Path, shard: tuple[int, int] | None, needs: tuple[str, ...],
         levels: list[str | None], isa_given: bool, echo: Callable[[str], None],
         on_progress: Callable[[Campaign], None]) -> RunRecord:
    """The run, its settings checked (and its cluster's workers started, with ``pool``)."""
    devices = pool.devices() if pool is not None else set(available_devices())
    missing = [d for d in space.devices or () if d not in devices]
    if missing:
        where = "on any node of the cluster" if pool is not None else "here"
        raise RunError(f"--devices {','.join(missing)}: not available {where} (available: "
                       f"{','.join(sorted(devices))})")
    seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
    specs, impossible = plan_searches(candidate, properties, list(modes), space, seed=seed, reports=reports,
                                      timeout=timeout, database=None if database == "none" else database,
                                      levels=levels, candidate_levels=candidate is not None and isa_given)
    if not specs:
        raise RunError(f"the flags leave no cases for {','.join(impossible)}")
    shard_note = ""
    if shard is not None:
        number, shards = shard
        everything = len(specs)
        specs = [dataclasses.replace(s, index=i) for i, s in
                 enumerate(s for s in specs if shard_of(s.plan_index, shards) == number)]
        shard_note = f"; shard {number}/{shards}: {len(specs)} of {everything} searches"
        if not specs:
            raise RunError(f"--shard {number}/{shards}: this shard has no searches (the run has {everything})")
    unplaced = []
    if pool is not None:
        specs = [dataclasses.replace(s, needs=needs_of(s, candidate, needs)) for s in specs]
        unplaced = [f"{s.name}: not compared: {why}" for s in specs if (why := pool.cannot_run(s))]
        specs = [dataclasses.replace(s, index=i) for i, s in enumerate(s for s in specs if not pool.cannot_run(s))]
        if not specs:
            raise RunError(f"--cluster {pool.address}: no node can run any search ({unplaced[0]})")
    workers = pool.size if pool is not None else \
        max(1, min(workers or os.cpu_count() or 1, most_slices(len(specs), max_examples)))

    echo(f"fuzz-birnn run: {environment_summary()}")
    what = f"candidate {candidate} against torch's fused modules" if candidate else "torch's own recurrent modules"
    budget = f"{max_examples} examples" + (f" or {time_budget:g}s, whichever ends first" if time_budget else "")
    echo(f"checking {what}; {budget} over {len(specs)} searches on {workers} worker(s){shard_note}; "
         f"seed {seed} (repeat with --seed {seed}); example database: {describe_database(database)}")
    echo(f"properties: {', '.join(p for p in properties if p not in impossible)}")
    if impossible:
        echo(f"not run (the flags leave no cases for them): {', '.join(impossible)}")
    leveled = sorted({s.prop for s in specs if s.isa}, key=properties.index)
    if leveled:
        names = [NATIVE + (f" ({native_level()})" if native_level() and pool is None else "") if level is None
                 else level for level in levels]
        echo(f"instruction-set levels (for {', '.join(leveled)}): {', '.join(names)}")
    if pool is not None:
        echo(f"on the {pool.describe()}")
    for line in unplaced:
        echo(line)
    campaign = Campaign(specs, max_examples, workers, time_budget, on_progress=on_progress, pool=pool,
                        notes=list(unplaced))
    options = RunOptions(candidate, [p for p in properties if p not in impossible], list(modes), seed, max_examples,
                         time_budget, timeout, workers, describe_database(database),
                         None if shard is None else f"{shard[0]}/{shard[1]}", str(reports),
                         cluster=pool.address if pool is not None else None,
                         isa=[level or NATIVE for level in levels])
    started = datetime.datetime.now(datetime.UTC)
    interrupted = False
    try:
        campaign.run()
    except KeyboardInterrupt:
        interrupted = True
    record = campaign.run_record(options, started=started, interrupted=interrupted)
    write_record(reports, record)
    return record


def _levels(isa: Sequence[str] | None, pool: RayPool | None) -> list[str | None]:
    """The instruction-set levels to search at (``None``: each machine's own, uncapped)."""
    if isa is None:  # each machine's own level, and every lower one some machine reaches
        return [None, *(pool.lower_levels() if pool is not None else levels_here()[1:])]
    own = native_level() if pool is None else None
    reachable = pool.all_levels() if pool is not None else levels_here()[1:]
    unknown = [level for level in isa if level not in (NATIVE, *LEVELS)]
    if unknown or not isa:
        raise RunError(f"--isa {','.join(unknown) or '(none)'}: choose from {','.join((NATIVE, *LEVELS))}")
    beyond = [level for level in isa if level not in (NATIVE, own, *reachable)]
    if beyond:
        here = ", ".join([NATIVE + (f" ({own})" if own else ""), *reachable])
        raise RunError(f"--isa {','.join(beyond)}: {'no node of the cluster' if pool else 'this CPU'} runs at that "
                       f"level (levels here: {here})")
    return list(dict.fromkeys(None if level in (NATIVE, own) else level for level in isa))


def _cluster(address: str, workers: int | None, reports: Path) -> RayPool:
    try:
        return RayPool(address, workers=workers, reports=reports)
    except ClusterError as error:
        raise RunError(str(error)) from None


def _writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise RunError(f"--reports {folder}: cannot write there ({error.strerror or error})") from None
