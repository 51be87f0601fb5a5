"""The scheduler: every worker busy while any search has cases left, fair shares, quotas kept,
and the same slices (numbers, sizes, seeds) for the same seed however many workers take them."""

from __future__ import annotations

from pathlib import Path

from fuzz_birnn.campaign.engine import plan_searches
from fuzz_birnn.campaign.scheduler import FIRST_SLICE, SLICE_EXAMPLES, Scheduler, Search, Slice, most_slices, quota_of
from fuzz_birnn.core.space import CaseSpace


def searches(count: int, quota: int) -> list[Search]:
    modes = ["RNN_TANH", "RNN_RELU", "GRU", "LSTM"][:count]
    specs, _ = plan_searches(None, ["agreement"], modes, CaseSpace(), seed=7, reports=Path("unused"),
                             timeout=60, database=None)
    return [Search(spec, quota) for spec in specs]


def hand_out(scheduler: Scheduler, workers: int) -> list[Slice]:
    """Run the scheduler to its end with ``workers`` workers, the oldest running slice ending
    first; the slices in the order they were handed out."""
    running: list[Slice] = []
    handed: list[Slice] = []
    while True:
        while len(running) < workers:
            job = scheduler.next_job()
            if job is None:
                break
            assert isinstance(job, Slice)
            running.append(job)
            handed.append(job)
        if not running:
            return handed
        job = running.pop(0)  # every third slice stops early (a failure shrunk, its time cap)
        used = job.max_examples if job.number % 3 else job.max_examples // 2
        scheduler.slice_ended(job, examples=used, seconds=1.0)


def test_one_search_keeps_every_worker_busy():
    scheduler = Scheduler(searches(1, 1000), deadline=None, reduce_seconds=60, workers=2)
    first, second = scheduler.next_job(), scheduler.next_job()
    assert isinstance(first, Slice) and isinstance(second, Slice)
    assert first.search == second.search
    assert (first.number, second.number) == (1, 2)
    assert first.seed != second.seed
    assert (first.max_examples, second.max_examples) == (FIRST_SLICE, SLICE_EXAMPLES)
    assert first.reuse and not second.reuse  # the database is replayed once a search


def test_an_idle_search_goes_before_a_second_slice_of_a_running_one():
    scheduler = Scheduler(searches(2, 1000), deadline=None, reduce_seconds=60, workers=3)
    jobs = [scheduler.next_job() for _ in range(3)]
    assert [job.search.index for job in jobs] == [0, 1, 0]


def test_running_slices_never_add_up_to_more_than_the_quota():
    scheduler = Scheduler(searches(1, 230), deadline=None, reduce_seconds=60, workers=8)
    jobs = [scheduler.next_job() for _ in range(8)]
    given = [job for job in jobs if job is not None]
    assert [job.max_examples for job in given] == [FIRST_SLICE, SLICE_EXAMPLES, 10]
    scheduler.slice_ended(given[1], examples=50, seconds=1.0)  # stopped early
    assert scheduler.next_job() is None  # its unused examples wait until no slice of the search runs
    scheduler.slice_ended(given[0], examples=FIRST_SLICE, seconds=1.0)
    scheduler.slice_ended(given[2], examples=10, seconds=1.0)
    again = scheduler.next_job()
    assert isinstance(again, Slice) and again.max_examples == 150 and again.number == 4
    scheduler.slice_ended(again, examples=150, seconds=1.0)
    assert scheduler.next_job() is None and scheduler.finished(busy=False)


def test_the_same_slices_whatever_the_number_of_workers():
    def slices(workers):
        handed = hand_out(Scheduler(searches(4, 1000), deadline=None, reduce_seconds=60, workers=workers), workers)
        return sorted((job.search.index, job.number, job.max_examples, job.seed) for job in handed)

    one = slices(1)
    assert slices(2) == one == slices(5)
    used = {index: sum(size if number % 3 else size // 2 for i, number, size, _ in one if i == index)
            for index in range(4)}
    assert used == dict.fromkeys(range(4), 1000)  # every search used its whole quota


def test_workers_are_not_started_for_slices_that_cannot_exist():
    assert quota_of(4, 10) == 3
    assert most_slices(1, 10) == 1
    assert most_slices(1, FIRST_SLICE + 1) == 2
    assert most_slices(32, 25000) >= 32 * 4


class _NodesLeft:
    """A pool whose remaining workers cannot run ``lacking`` searches (a cluster that lost its GPU node)."""

    def __init__(self, lacking: set[int]) -> None:
        self.lacking = lacking

    def cannot_run(self, spec):
        return "no node has cuda" if spec.index in self.lacking else None


def _campaign(tmp_path, lacking):
    from fuzz_birnn.campaign.engine import Campaign

    specs, _ = plan_searches(None, ["agreement"], ["GRU", "LSTM"], CaseSpace(max_layers=1), seed=3,
                             reports=tmp_path, timeout=60, database=None)
    campaign = Campaign(specs, max_examples=40, workers=2, pool=_NodesLeft(lacking))  # type: ignore[arg-type]
    return campaign, specs


def _in_flight(spec):
    from fuzz_birnn.core.case import Case, Config, Inputs

    return {"candidate": spec.candidate, "property": spec.prop,
            "case": Case(Config(mode=spec.mode), Inputs()).to_dict(), "details": {}}


def test_a_reduction_whose_worker_is_lost_where_nothing_else_can_run_it_is_written_and_the_run_ends(tmp_path):
    """Its search already done, the reduction waits to run again, but no worker left can take it:
    the run must still end, with the crash reported unshrunk rather than lost."""
    from fuzz_birnn.campaign.events import Lost

    campaign, specs = _campaign(tmp_path, lacking={0})
    scheduler = campaign.scheduler
    for search in scheduler.searches:
        search.examples = search.quota  # every slice has run
    scheduler.fault_in_process(specs[0], "crash", "died (SIGSEGV)", "crash: died (SIGSEGV)", _in_flight(specs[0]), "")
    reduce = scheduler.next_job()
    campaign._lost(reduce, Lost(0, "node gpu-1 left the run"))
    assert scheduler.finished(busy=False), "the run would wait forever for a worker that can take the reduction"
    assert [f.shrink for f in campaign.findings] == ["not shrunk: no node has cuda"]
    assert any("not compared further: no node has cuda" in note for note in campaign.notes)


def test_a_job_lost_again_and_again_stops_its_search_with_an_error(tmp_path):
    from fuzz_birnn.campaign.engine import MAX_LOSSES
    from fuzz_birnn.campaign.events import Lost

    campaign, _ = _campaign(tmp_path, lacking=set())
    job = campaign.scheduler.next_job()
    for _ in range(MAX_LOSSES):
        campaign._lost(job, Lost(0, "worker lost"))
        assert campaign.scheduler.next_job(fits=lambda spec: spec.index == job.search.index) == job  # runs again
    campaign._lost(job, Lost(0, "worker lost"))
    assert campaign.errors and "lost 4 times" in campaign.errors[0]
    assert campaign.scheduler.searches[job.search.index].done


class _Levels:
    """A pool of workers at given instruction-set levels."""

    switches = True

    def __init__(self, levels):
        self.levels = dict(enumerate(levels))

    def level(self, worker_id):
        return self.levels[worker_id]

    def workers(self):
        return list(self.levels)

    def reaches(self, worker_id, isa):
        return True


def test_one_worker_serves_every_level_in_turn_and_two_workers_one_level_each(tmp_path):
    from fuzz_birnn.campaign.engine import LEVEL_SWITCH_SECONDS, Campaign

    specs, _ = plan_searches(None, ["fused-vs-reference"], ["GRU", "LSTM"], CaseSpace(), seed=3, reports=tmp_path,
                             timeout=60, database=None, levels=(None, "default"))
    assert [s.isa for s in specs] == [None, None, "default", "default"]
    campaign = Campaign(specs, max_examples=4000, workers=1)
    native = [s for s in campaign.scheduler.searches if s.spec.isa is None]
    one = _Levels([None])
    assert campaign._level_for(one, 0) is None  # no level is behind yet
    for search in native:
        search.seconds = LEVEL_SWITCH_SECONDS + 1  # the native searches are a switch's worth ahead
    assert campaign._level_for(one, 0) == "default"
    two = _Levels([None, None])
    assert campaign._level_for(two, 1) == "default"  # a level no worker serves gets the second worker at once
    for search in native:
        search.examples = search.planned = search.quota  # the native level is done: its worker moves
    assert campaign._level_for(_Levels([None, "default"]), 0) == "default"


def test_under_a_short_time_budget_a_level_without_a_worker_gets_its_turn_sooner(tmp_path):
    """Every level has its turn within a time budget: the worker time a level may fall behind
    before a worker moves to it shrinks with the budget (a 30 s run is over before 20 s of it)."""
    from fuzz_birnn.campaign.engine import Campaign

    specs, _ = plan_searches(None, ["fused-vs-reference"], ["GRU", "LSTM"], CaseSpace(), seed=3, reports=tmp_path,
                             timeout=60, database=None, levels=(None, "default"))
    for budget, moves in ((None, False), (30.0, True)):
        campaign = Campaign(specs, max_examples=4000, workers=1, time_budget=budget)
        for search in campaign.scheduler.searches:
            if search.spec.isa is None:
                search.seconds = 4.0  # 8 s of worker time at the native level, none at the default level
        assert campaign._level_for(_Levels([None]), 0) == ("default" if moves else None)
