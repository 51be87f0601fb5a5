"""``fuzz-birnn run --cluster ADDRESS``: the campaign's jobs on the nodes of a Ray cluster.

One driver (the ``fuzz-birnn run`` process) keeps the :class:`~fuzz_birnn.campaign.scheduler.Scheduler`,
the time budget, the progress line and the reports folder, exactly as on one machine; only the
workers are elsewhere. Each worker is a Ray actor (:class:`NodeWorker`, one CPU) pinned to a node;
it runs each job in a worker process of its own, watched by a
:class:`~fuzz_birnn.campaign.pool.LocalPool` of one, so a case that crashes or hangs on a node is
caught there, written ahead there, and comes back as the same event it would be on one machine.
The reports a job writes go to the actor's own folder on its node and travel back with the job's
result; the driver lands each whole in ``--reports`` (a report that is already there stays).

**Placement.** A search runs only on a worker whose node has what it needs
(:attr:`~fuzz_birnn.campaign.scheduler.SearchSpec.needs`): a GPU for a search with CUDA cases
(the workers of a node with GPUs share them, ``num_gpus``), the Ray resources named by ``--needs``
for the candidate's searches (a runtime or an accelerator some nodes have). What a node has is
what its workers find there (devices, torch's CPU capability) and the resources it advertises
(``ray start --resources '{"NAME": 1}'``). A search no node can take is not run, and the run
says so.

**Losses.** A worker or node that vanishes mid-job (:class:`~fuzz_birnn.campaign.events.Lost`)
costs that job alone: it runs again, unchanged (same slice number and seed), on another worker,
at most :data:`~fuzz_birnn.campaign.engine.MAX_LOSSES` times. A worker sends a job's events only
with its end (so the progress line moves once a job, and a lost job has counted nothing). A
search that no worker left can run ends, saying so, its waiting reductions written unshrunk. An
exception the harness raises on a node is the job's error, as on one machine.

**The example database** is what ``--database`` names: a Redis URL is shared by every node; a
directory is that path on each node (shared where the path is on a shared file system).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fuzz_birnn.campaign.engine import worker_main
from fuzz_birnn.campaign.events import (
    Counts,
    Died,
    Event,
    Lost,
    Progress,
    ReductionEnded,
    SliceEnded,
    SliceResult,
    ends_job,
)
from fuzz_birnn.campaign.pool import LocalPool
from fuzz_birnn.campaign.scheduler import Reduce, SearchSpec, Slice
from fuzz_birnn.core.devices import available_devices, cpu_capability, hostname
from fuzz_birnn.core.isa import LEVELS, levels_here
from fuzz_birnn.output.files import staging_folder, write_whole
from fuzz_birnn.output.run_record import Finding, Node

__all__ = ["CONNECT_SECONDS", "ClusterError", "NodeWorker", "RayPool", "needs_of"]

#: How long a cluster's address may take to accept a connection, and its workers to start.
CONNECT_SECONDS = 5.0
START_SECONDS = 300.0


class ClusterError(ValueError):
    """A ``--cluster`` the run cannot use: one line, saying why and what to do."""


def needs_of(spec: SearchSpec, candidate: str | None, needs: tuple[str, ...]) -> tuple[str, ...]:
    """What a node must have to run ``spec``: its non-CPU devices, and ``needs`` where it checks
    the user's ``candidate`` (a torch-only property runs anywhere)."""
    devices = tuple(d for d in spec.space.devices or () if d != "cpu")
    return devices + (needs if candidate is not None and spec.candidate == candidate else ())


class NodeWorker:
    """A Ray actor on one node: runs each job in a worker process it watches, in a folder of its own."""

    def __init__(self, first: list[str], last: list[str]) -> None:
        # the driver's import path, where it exists here: a MODULE:ATTR candidate beside the driver
        sys.path[:0] = [entry for entry in first if entry not in sys.path and Path(entry).is_dir()]
        sys.path += [entry for entry in last if entry not in sys.path and Path(entry).is_dir()]
        _remove_orphaned_folders()
        self.folder = Path(tempfile.mkdtemp(prefix=f"{_FOLDER_PREFIX}{os.getpid()}-"))
        self.pool = LocalPool(1, worker_main)
        self.pool.start()

    def describe(self) -> dict[str, Any]:
        import ray

        return {"node": ray.get_runtime_context().get_node_id(), "hostname": hostname(),
                "devices": list(available_devices()), "isa": cpu_capability(), "levels": levels_here()}

    def run(self, job: Slice | Reduce) -> tuple[list[Event], dict[str, bytes]]:
        """Run ``job`` here; its events, and every file it wrote under the reports folder."""
        reports = job.search.reports
        here = dataclasses.replace(job.search, reports=str(self.folder))
        if job.search.isa != self.pool.level(0):  # its worker process starts again with the level's caps
            self.pool.switch(0, job.search.isa)
        self.pool.give(0, dataclasses.replace(job, search=here))
        events: list[Event] = []
        while not events or not ends_job(events[-1]):
            events += self.pool.events(timeout=0.5)
        return [_rehome(event, str(self.folder), reports) for event in events], self._take_files()

    def stop(self) -> None:
        self.pool.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _take_files(self) -> dict[str, bytes]:
        """The reports (and saved tracebacks) written here, removed from here."""
        files = {}
        for entry in self.folder.iterdir():
            if entry.is_dir() and (not entry.name.startswith(".") or entry.name == ".errors"):
                for path in sorted(entry.rglob("*")):
                    if path.is_file():
                        files[str(path.relative_to(self.folder))] = path.read_bytes()
                shutil.rmtree(entry, ignore_errors=True)
        return files


_FOLDER_PREFIX = "fuzz-birnn-worker-"


def _remove_orphaned_folders() -> None:
    """Remove the folders of this node's workers that were killed (Ctrl-C, a lost run) before they could."""
    for folder in Path(tempfile.gettempdir()).glob(f"{_FOLDER_PREFIX}*-*"):
        pid = folder.name[len(_FOLDER_PREFIX):].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RayPool:
    """Workers on a Ray cluster's nodes: the campaign's :class:`~fuzz_birnn.campaign.engine.Pool`."""

    def __init__(self, address: str, *, workers: int | None, reports: Path) -> None:
        self.address = address
        self.reports = reports
        self._ray = _connect(address)
        self._actors: dict[int, Any] = {}
        self._node_of: dict[int, str] = {}
        self._nodes: dict[str, Node] = {}
        self._has: dict[str, set[str]] = {}
        self._levels: dict[str, list[str]] = {}  # the instruction-set levels each node's CPU reaches
        self._in_flight: dict[Any, int] = {}
        self._busy: set[int] = set()
        self._jobs: dict[int, Slice | Reduce] = {}
        self._gone: set[int] = set()  # workers lost during the run
        self._level_of: dict[int, str | None] = {}  # the instruction-set level each worker runs at
        try:
            self._start_workers(workers)
        except BaseException:
            self.stop()
            raise

    @property
    def size(self) -> int:
        return len(self._actors)

    def lower_levels(self) -> list[str]:
        """The instruction-set levels some node reaches below its own, highest first."""
        below = {level for levels in self._levels.values() for level in levels[1:]}
        return [level for level in LEVELS if level in below]

    def all_levels(self) -> list[str]:
        """Every instruction-set level some node reaches, highest first."""
        reached = {level for levels in self._levels.values() for level in levels}
        return [level for level in LEVELS if level in reached]

    def devices(self) -> set[str]:
        return {device for node in self._nodes.values() if not node.lost for device in node.devices}

    def describe(self) -> str:
        live = [node for node in self._nodes.values() if node.workers]
        return f"Ray cluster at {self.address}: {len(live)} node(s), " + "; ".join(
            f"{node.hostname} {node.id[:8]} {node.workers} worker(s)" for node in live)

    # the Pool protocol

    def start(self) -> None:
        """The workers started with the pool (the run needs what they found before it plans)."""

    def idle(self) -> list[int]:
        return [worker_id for worker_id in self._actors if worker_id not in self._busy]

    #: a worker is given a level as here (its node's process starts again at it with the next job)
    switches = True

    def fits(self, worker_id: int, spec: SearchSpec) -> bool:
        return set(spec.needs) <= self._has[self._node_of[worker_id]] and spec.isa == self._level_of.get(worker_id)

    def level(self, worker_id: int) -> str | None:
        return self._level_of.get(worker_id)

    def workers(self) -> list[int]:
        return list(self._actors)

    def reaches(self, worker_id: int, isa: str | None) -> bool:
        return isa is None or isa in self._levels[self._node_of[worker_id]]

    def switch(self, worker_id: int, isa: str | None) -> None:
        """Give ``worker_id`` level ``isa`` (its node's process starts again at it with the next job)."""
        if self.reaches(worker_id, isa):
            self._level_of[worker_id] = isa

    def cannot_run(self, spec: SearchSpec) -> str | None:
        nodes = {self._node_of[worker_id] for worker_id in self._actors}
        needs = [*spec.needs, *([f"instruction-set level {spec.isa}"] if spec.isa else [])]
        has = {node: self._has[node] | {f"instruction-set level {level}" for level in self._levels[node]}
               for node in nodes}
        if any(set(needs) <= has[node] for node in nodes):
            return None
        if not nodes:
            return "no node is left"
        missing = [need for need in needs if not any(need in has[node] for node in nodes)]
        return f"no node has {', '.join(missing)}" if missing else f"no node has all of {', '.join(needs)}"

    def nodes(self) -> list[Node]:
        """Every node that had workers; ``lost`` where none of its workers is left."""
        live = {node for worker_id, node in self._node_of.items() if worker_id not in self._gone}
        return [dataclasses.replace(node, lost=node.id not in live) for node in self._nodes.values()]

    def node_of(self, worker_id: int) -> str:
        return self._node_of[worker_id]

    def give(self, worker_id: int, job: Slice | Reduce) -> None:
        self._busy.add(worker_id)
        self._jobs[worker_id] = job
        self._in_flight[self._actors[worker_id].run.remote(job)] = worker_id

    def events(self, timeout: float) -> list[Event]:
        if not self._in_flight:
            time.sleep(min(timeout, 0.05))
            return []
        ray = self._ray
        ready, _ = ray.wait(list(self._in_flight), num_returns=1, timeout=timeout)
        if ready:
            rest = [ref for ref in self._in_flight if ref not in ready]
            ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0] if rest else []
        events: list[Event] = []
        for ref in ready:
            worker_id = self._in_flight.pop(ref)
            self._busy.discard(worker_id)
            job = self._jobs.pop(worker_id)
            try:
                sent, files = ray.get(ref)
            except ray.exceptions.RayTaskError as error:  # the harness raised on the node: the job's error
                where = self._nodes[self._node_of[worker_id]].hostname
                cause = error.cause if isinstance(getattr(error, "cause", None), BaseException) else error
                events.append(_failed(worker_id, job, f"the worker on node {where} raised {_line(cause)}"))
                continue
            except ray.exceptions.RayError as error:  # the worker or its node is gone
                events.append(Lost(worker_id, self._lose(worker_id, error)))
                continue
            landed = self._land(files)
            events += [_tagged(event, worker_id, landed) for event in sent]
        return events

    def stop(self) -> None:
        """Stop every worker (a job in flight is cancelled with it) and leave the cluster."""
        ray = self._ray
        stopping = [actor.stop.remote() for actor in self._actors.values()]
        with contextlib.suppress(Exception):
            ray.wait(stopping, num_returns=len(stopping), timeout=0 if self._in_flight else 10)
        for actor in self._actors.values():
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
        self._actors.clear()
        with contextlib.suppress(Exception):
            ray.shutdown()

    # workers

    def _start_workers(self, workers: int | None) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray = self._ray
        nodes = [node for node in ray.nodes() if node.get("Alive")]
        slots = {node["NodeID"]: int(node["Resources"].get("CPU", 0)) for node in nodes}
        cap = workers or sum(slots.values())
        plan: list[str] = []  # one entry per worker: its node, taken round-robin so that a cap spreads
        while len(plan) < cap and any(slots.values()):
            for node_id in slots:
                if slots[node_id] and len(plan) < cap:
                    plan.append(node_id)
                    slots[node_id] -= 1
        if not plan:
            raise ClusterError(f"--cluster {self.address}: the cluster has no CPU for a worker "
                               "(start its nodes with --num-cpus)")
        resources = {node["NodeID"]: node["Resources"] for node in nodes}
        remote = ray.remote(NodeWorker)
        for worker_id, node_id in enumerate(plan):
            gpus = _gpu_share(int(resources[node_id].get("GPU", 0)), plan.count(node_id))
            self._actors[worker_id] = remote.options(
                num_cpus=1, num_gpus=gpus, max_restarts=0, max_task_retries=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False)).remote(
                    [os.getcwd(), *sys.path[:1]], sys.path[1:])
            self._node_of[worker_id] = node_id
        try:
            found = ray.get([actor.describe.remote() for actor in self._actors.values()], timeout=START_SECONDS)
        except Exception as error:
            raise ClusterError(f"--cluster {self.address}: its workers did not start ({_line(error)}); is fuzz-birnn "
                               "installed on every node, and are the nodes' CPUs free?") from None
        for node_id in dict.fromkeys(plan):
            seen = next(f for f, n in zip(found, plan, strict=True) if n == node_id)
            advertised = {name: value for name, value in resources[node_id].items()
                          if not name.startswith(("node:", "accelerator_type:")) and
                          name not in ("memory", "object_store_memory")}
            self._nodes[node_id] = Node(node_id, seen["hostname"], seen["devices"], seen["isa"], advertised,
                                        plan.count(node_id))
            self._has[node_id] = set(seen["devices"]) | {name for name, value in advertised.items() if value > 0}
            self._levels[node_id] = list(seen["levels"])

    def _lose(self, worker_id: int, error: BaseException) -> str:
        """Forget a worker that is gone, and every worker of its node if the cluster says the node is gone."""
        node_id = self._node_of[worker_id]
        node = self._nodes[node_id]
        gone = [worker_id]
        if node_id not in {n["NodeID"] for n in self._ray.nodes() if n.get("Alive")}:
            gone += [other for other in self._actors if self._node_of[other] == node_id]
        self._gone.update(gone)
        for lost in gone:
            actor = self._actors.pop(lost, None)
            if actor is not None and lost not in self._busy:
                with contextlib.suppress(Exception):
                    self._ray.kill(actor, no_restart=True)
        if len(gone) > 1 or not any(self._node_of[other] == node_id for other in self._actors):
            return f"node {node.hostname} {node_id[:8]} left the run ({_line(error)})"
        return f"a worker on node {node.hostname} {node_id[:8]} was lost ({_line(error)})"

    def _land(self, files: dict[str, bytes]) -> dict[str, bool]:
        """Write a job's reports into the reports folder, each whole; which of them are new here."""
        folders: dict[str, dict[str, bytes]] = {}
        for relative, data in files.items():
            top, _, rest = relative.partition("/")
            folders.setdefault(top, {})[rest] = data
        landed = {}
        for name, content in folders.items():
            if name == ".errors":
                for rest, data in content.items():
                    write_whole(self.reports / name / rest, data.decode("utf-8", "replace"))
                continue
            landed[name] = _land_folder(self.reports / name, content)
        return landed


def _gpu_share(gpus: int, workers: int) -> float:
    """Each of a node's ``workers``' share of its ``gpus``, as Ray can place it: a whole GPU each
    where there are enough, else ``1/k`` with ``k`` workers on each GPU (a fraction never spans two)."""
    if gpus == 0:
        return 0.0
    return 1.0 if gpus >= workers else 1.0 / -(-workers // gpus)


def _failed(worker_id: int, job: Slice | Reduce, error: str) -> Event:
    """The end of a job that raised on its node: the slice's error, or the reduction's."""
    if isinstance(job, Slice):
        return SliceEnded(worker_id, SliceResult(Counts(), 0, 0.0, [], error=error))
    return ReductionEnded(worker_id, None, error)


def _land_folder(final: Path, content: dict[str, bytes]) -> bool:
    """Write a report folder whole (a hidden folder renamed into place); False if it was there."""
    if final.exists():
        return False
    staging = staging_folder(final.parent, f".{final.name}-")
    try:
        for rest, data in content.items():
            (staging / rest).parent.mkdir(parents=True, exist_ok=True)
            (staging / rest).write_bytes(data)
        try:
            staging.rename(final)
        except OSError:
            if not final.exists():
                raise
            return False
        return True
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _rehome(event: Event, here: str, reports: str) -> Event:
    """An event with the node's folder in its paths replaced by the driver's reports folder."""
    if isinstance(event, SliceEnded):
        result = dataclasses.replace(event.result, findings=[_moved(f, reports) for f in event.result.findings],
                                     error=event.result.error and event.result.error.replace(here, reports))
        return dataclasses.replace(event, result=result)
    if isinstance(event, ReductionEnded) and event.finding is not None:
        return dataclasses.replace(event, finding=_moved(event.finding, reports))
    return event


def _moved(finding: Finding, reports: str) -> Finding:
    return dataclasses.replace(finding, folder=str(Path(reports) / Path(finding.folder).name))


def _tagged(event: Event, worker_id: int, landed: dict[str, bool]) -> Event:
    """An event from a node's worker process as the driver's worker ``worker_id`` sent it."""
    def newness(finding: Finding) -> Finding:
        return dataclasses.replace(finding, new=landed.get(Path(finding.folder).name, finding.new))

    if isinstance(event, SliceEnded):
        event = dataclasses.replace(event, result=dataclasses.replace(
            event.result, findings=[newness(f) for f in event.result.findings]))
    elif isinstance(event, ReductionEnded) and event.finding is not None:
        event = dataclasses.replace(event, finding=newness(event.finding))
    assert isinstance(event, Progress | SliceEnded | ReductionEnded | Died | Lost)
    return dataclasses.replace(event, worker_id=worker_id)


def _connect(address: str) -> Any:
    """``ray``, connected to the cluster at ``address``, or :class:`ClusterError` in one line."""
    try:
        import ray
    except ImportError:
        raise ClusterError(f"--cluster {address}: needs Ray: pip install 'fuzz-birnn[ray]'") from None
    if address != "auto":
        _reachable(address)
    logging.getLogger("ray").setLevel(logging.ERROR)  # "Connecting to existing Ray cluster ...": the header says it
    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False, configure_logging=True,
                 include_dashboard=False)
    except Exception as error:
        raise ClusterError(f"--cluster {address}: cannot connect ({_line(error)})") from None
    return ray


def _reachable(address: str) -> None:
    """Refuse an address that is malformed or does not answer within :data:`CONNECT_SECONDS`
    (Ray itself would wait for minutes)."""
    parts = urlsplit(address if "://" in address else f"//{address}")
    if parts.scheme not in ("", "ray"):
        raise ClusterError(f"--cluster {address}: give auto, HOST:PORT or ray://HOST:PORT")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise ClusterError(f"--cluster {address}: give auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((parts.hostname, port), timeout=CONNECT_SECONDS).close()
    except OSError as error:
        raise ClusterError(f"--cluster {address}: nothing answers at {parts.hostname}:{port} "
                           f"({error.strerror or error}); is the cluster up (ray status)?") from None


def _line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")

