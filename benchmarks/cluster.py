"""A campaign on a two-node Ray cluster (one CPU each, on this machine) against ``--workers 2``
here, measured side by side in one run: cases per second of each, the ratio, and what the driver
pays per slice (its CPU time, the bytes a job and its result take, its peak memory).

    python benchmarks/cluster.py [--max-examples 6000] [--seed 0] [--rounds 2]

Both runs check the same searches with the same seed and ``--max-examples``; rounds alternate
the order (cluster first, then here first), so that a machine warming up or slowing down favours
neither. Needs ``pip install 'fuzz-birnn[ray]'``.
"""

from __future__ import annotations

import argparse
import os
import pickle
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ray.cluster_utils import Cluster

from fuzz_birnn.campaign import cluster as cluster_module
from fuzz_birnn.campaign.api import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 80 * 2**20,
                                                            "include_dashboard": False})
    cluster.add_node(num_cpus=1, object_store_memory=80 * 2**20)
    sizes = _measure_sizes()
    try:
        for number in range(args.rounds):
            order = ("cluster", "here") if number % 2 == 0 else ("here", "cluster")
            rates = {}
            for where in order:
                rates[where] = _once(where, cluster.address, args)
            print(f"round {number + 1}: cluster/here = {rates['cluster'] / rates['here']:.2f}", flush=True)
    finally:
        cluster.shutdown()
    jobs, results = sizes
    if jobs:
        print(f"bytes per slice: job {sum(jobs) / len(jobs):.0f} (max {max(jobs)}), result "
              f"{sum(results) / len(results):.0f} (max {max(results)}) over {len(jobs)} jobs")
    print(f"driver peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


def _once(where: str, address: str, args: argparse.Namespace) -> float:
    campaigns = []
    with tempfile.TemporaryDirectory() as reports:
        cpu = _cpu()
        started = time.monotonic()
        record = run(None, max_examples=args.max_examples, seed=args.seed, reports=reports, database="none",
                     workers=2, cluster=address if where == "cluster" else None,
                     on_progress=lambda campaign: campaigns.append(campaign) if not campaigns else None)
        wall = time.monotonic() - started
        driver = _cpu() - cpu
    slices = sum(search.slices for search in campaigns[0].scheduler.searches) if campaigns else 0
    rate = record.cases.total / record.seconds
    print(f"{where:<8} {record.cases.total} cases in {record.seconds:.1f}s of campaign ({wall:.1f}s with start-up): "
          f"{rate:.1f} cases/s; {slices} slices; driver CPU {driver:.2f}s = {1000 * driver / max(1, slices):.1f} "
          f"ms a slice; exit {record.exit_code}", flush=True)
    return rate


def _cpu() -> float:
    """CPU seconds of this process (the driver; for the run here, its workers are its children and not counted)."""
    times = os.times()
    return times.user + times.system


def _measure_sizes() -> tuple[list[int], list[int]]:
    """Record the pickled size of every job given to a cluster's worker, and of what comes back
    (its events and report files), in bytes."""
    jobs: list[int] = []
    back: list[int] = []
    give, land, tagged = cluster_module.RayPool.give, cluster_module.RayPool._land, cluster_module._tagged

    def measured_give(self, worker_id, job):
        jobs.append(len(pickle.dumps(job)))
        back.append(0)
        return give(self, worker_id, job)

    def measured_land(self, files):
        back[-1] += sum(len(data) + len(name) for name, data in files.items())
        return land(self, files)

    def measured_tagged(event, worker_id, landed):
        back[-1] += len(pickle.dumps(event))
        return tagged(event, worker_id, landed)

    cluster_module.RayPool.give = measured_give  # type: ignore[method-assign]
    cluster_module.RayPool._land = measured_land  # type: ignore[method-assign]
    cluster_module._tagged = measured_tagged
    return jobs, back


if __name__ == "__main__":
    main()
