"""``fuzz-birnn run --cluster``: a campaign on a real local Ray cluster of two nodes, and ``merge``.

The cluster (``ray.cluster_utils.Cluster``) runs on this machine: two nodes of one CPU each, the
second advertising a Ray resource ``special`` that the first lacks.
"""

from __future__ import annotations

import json
import sys

import pytest

from fuzz_birnn.campaign.api import RunError, run
from fuzz_birnn.core.space import CaseSpace
from tests.test_campaigns import fuzz, run_record

pytestmark = pytest.mark.e2e

SMALL = CaseSpace(dtypes=("float64", "float32"), max_layers=2, max_seq_len=4, max_batch=3)


def _cluster(**second):
    ray_utils = pytest.importorskip("ray.cluster_utils", reason="the ray extra is not installed")
    cluster = ray_utils.Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "object_store_memory": 80 * 2**20, "include_dashboard": False})
    node = cluster.add_node(num_cpus=1, object_store_memory=80 * 2**20, **second)
    return cluster, node


@pytest.fixture(scope="module")
def cluster():
    cluster, _ = _cluster(resources={"special": 1})
    yield cluster
    cluster.shutdown()


def _by_node(record):
    special = next(n for n in record.nodes if n.resources.get("special"))
    plain = next(n for n in record.nodes if not n.resources.get("special"))
    return special, plain


def test_work_spreads_over_both_nodes_into_one_reports_folder(cluster, tmp_path):
    record = run(None, properties=["agreement"], space=SMALL, max_examples=400, seed=5, reports=tmp_path,
                 cluster=cluster.address)
    assert record.exit_code == 0 and not record.errors, record.errors
    assert len(record.nodes) == 2 and all(node.cases > 0 for node in record.nodes), record.nodes
    assert sum(node.cases for node in record.nodes) == record.cases.total >= 400
    written = run_record(tmp_path)
    assert written["options"]["cluster"] == cluster.address
    assert {node["id"] for node in written["nodes"]} == {node.id for node in record.nodes}
    assert not list(tmp_path.glob(".inflight-*")), "a node's working files leaked into the reports folder"


def test_a_search_needing_a_resource_runs_only_on_the_node_that_has_it(cluster, tmp_path):
    # agreement checks the candidate (it needs "special"); fused-vs-reference checks torch (anywhere)
    record = run("decomposed", properties=["agreement", "fused-vs-reference"], modes=["GRU", "LSTM"], space=SMALL,
                 max_examples=400, seed=6, reports=tmp_path, cluster=cluster.address, needs=["special"])
    assert record.exit_code == 0 and not record.errors, record.errors
    special, plain = _by_node(record)
    assert {"agreement (GRU)", "agreement (LSTM)"} <= set(special.searches)
    assert not any(name.startswith("agreement") for name in plain.searches), plain.searches
    assert plain.cases > 0, "the torch-only searches should have run on the other node too"


def test_a_search_no_node_can_take_is_not_compared_saying_why(cluster, tmp_path):
    record = run("decomposed", properties=["agreement", "fused-vs-reference"], modes=["GRU"], space=SMALL,
                 max_examples=60, seed=7, reports=tmp_path, cluster=cluster.address, needs=["tpu"])
    assert record.exit_code == 0
    assert "agreement (GRU): not compared: no node has tpu" in record.notes
    assert {s.property for s in record.cases.by_search} == {"fused-vs-reference"}  # at each level


def test_the_seed_threads_bug_is_found_once_across_nodes(cluster, tmp_path):
    record = run("tests.planted:seed_missing_re_reversal", properties=["agreement"], space=SMALL,
                 max_examples=400, seed=8, reports=tmp_path, cluster=cluster.address)
    assert record.exit_code == 1 and not record.errors, record.errors
    signatures = {finding.signature for finding in record.findings}
    assert len(signatures) <= 2 and len(record.findings) == len(signatures)
    for finding in record.findings:
        for report in finding.reports:  # written whole on a node, landed whole here
            folder = tmp_path / report
            assert {"case.json", "repro.py", "tensors.safetensors"} <= {p.name for p in folder.iterdir()}
            assert json.loads((folder / "case.json").read_text())["signature"] == finding.signature
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") and p.name != ".hypothesis"]


def test_a_crash_on_a_node_is_isolated_shrunk_and_reported_here(cluster, tmp_path):
    record = run("tests.contract_bugs:segfaults_on_lstm", properties=["agreement"], modes=["LSTM", "GRU"],
                 space=SMALL, max_examples=200, seed=9, reports=tmp_path, cluster=cluster.address)
    crash = [f for f in record.findings if f.signature.startswith("crash")]
    assert len(crash) == 1, [f.signature for f in record.findings]
    assert crash[0].smallest.shrink.startswith("complete"), crash[0].smallest.shrink
    document = json.loads((tmp_path / crash[0].smallest.report / "case.json").read_text())
    assert document["kind"] == "crash" and document["case"]["config"]["mode"] == "LSTM"
    assert record.cases.by_search[1].cases >= 100, "the GRU search should have gone on past the LSTM crash"


def test_a_node_removed_mid_campaign_costs_only_its_slice(tmp_path):
    cluster, node = _cluster()
    removed = []

    def remove_once(campaign):
        if not removed and sum(campaign.counts.values()) >= 60:
            removed.append(True)
            cluster.remove_node(node)

    try:
        record = run(None, properties=["agreement"], space=SMALL, max_examples=1200, seed=10, reports=tmp_path,
                     cluster=cluster.address, on_progress=remove_once)
    finally:
        cluster.shutdown()
    assert removed
    assert record.exit_code == 0 and not record.errors, record.errors
    assert any("ran again on another worker" in note for note in record.notes), record.notes
    assert [node.lost for node in record.nodes].count(True) == 1, record.nodes
    assert all(search.cases >= 300 for search in record.cases.by_search), record.cases.by_search


def test_a_search_at_an_instruction_set_level_runs_only_on_nodes_that_reach_it(tmp_path):
    """The second node's workers start capped at the baseline level (as on an older CPU): its own
    probe says it reaches no higher, so the searches at this CPU's own level go to the first node."""
    from fuzz_birnn.core.isa import levels_here

    if "default" not in levels_here()[1:]:
        pytest.skip("this CPU's own level is the baseline: no node can be lower")
    own = levels_here()[0]
    cluster, _ = _cluster(env_vars={"ATEN_CPU_CAPABILITY": "default"})
    try:
        record = run(None, properties=["fused-vs-reference"], modes=["GRU", "LSTM"], space=SMALL, max_examples=200,
                     seed=12, reports=tmp_path, cluster=cluster.address, isa=[own, "default"])
    finally:
        cluster.shutdown()
    assert record.exit_code == 0 and not record.errors, record.errors
    older = next(node for node in record.nodes if node.isa == "DEFAULT")
    newer = next(node for node in record.nodes if node.isa != "DEFAULT")
    assert older.searches and all(name.endswith("at default") for name in older.searches), older.searches
    assert any(name.endswith(f"at {own}") for name in newer.searches), newer.searches
    assert {s.isa for s in record.cases.by_search if s.cases} == {own, "default"}


@pytest.mark.parametrize(("address", "says"), [
    ("127.0.0.1:1", "nothing answers at 127.0.0.1:1"),
    ("not an address", "give auto, HOST:PORT or ray://HOST:PORT"),
    ("http://127.0.0.1:8265", "give auto, HOST:PORT or ray://HOST:PORT"),
])
def test_a_bad_cluster_address_is_one_line_before_any_search(tmp_path, address, says):
    pytest.importorskip("ray", reason="the ray extra is not installed")
    done = fuzz("run", "--cluster", address, "--reports", tmp_path, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and says in done.stderr, done.stderr
    assert not (tmp_path / "run.json").exists()


def test_needs_without_a_cluster_is_one_line(tmp_path):
    done = fuzz("run", "--needs", "special", "--reports", tmp_path, timeout=60)
    assert done.returncode == 2 and "give --cluster too" in done.stderr, done.stderr


def test_a_missing_ray_is_one_line_naming_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(RunError, match=r"needs Ray: pip install 'fuzz-birnn\[ray\]'"):
        run(None, reports=tmp_path, cluster="auto")


def test_merge_makes_one_run_of_a_campaigns_shards(tmp_path):
    shards = []
    for number in (1, 2):
        folder = tmp_path / f"shard{number}"
        done = fuzz("run", "--candidate", "tests.planted:seed_missing_re_reversal", "--properties", "agreement",
                    "--max-layers", "2", "--max-examples", "200", "--seed", "11", "--shard", f"{number}/2",
                    "--workers", "1", "--reports", folder)
        assert done.returncode == 1, done.stdout + done.stderr
        shards.append(run_record(folder))
    out = tmp_path / "merged"
    done = fuzz("merge", tmp_path / "shard1", tmp_path / "shard2", "--out", out)
    assert done.returncode == 1, done.stdout + done.stderr
    merged = run_record(out)
    assert merged["cases"]["total"] == sum(s["cases"]["total"] for s in shards)
    assert sorted((s["property"], s["mode"]) for s in merged["cases"]["by_search"]) == sorted(
        (s["property"], s["mode"]) for shard in shards for s in shard["cases"]["by_search"])
    signatures = [f["signature"] for f in merged["findings"]]
    assert len(signatures) == len(set(signatures)) == len({f["signature"] for s in shards for f in s["findings"]})
    for finding in merged["findings"]:
        assert all((out / report / "case.json").exists() for report in finding["reports"])
    assert merged["options"]["merged"] == [str(tmp_path / "shard1"), str(tmp_path / "shard2")]
    assert merged["options"]["shard"] is None and len(merged["nodes"]) == 2
    assert (out / "index.html").exists()


def test_merge_refuses_a_folder_that_is_not_a_run_in_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    done = fuzz("merge", tmp_path / "empty", "--out", tmp_path / "out", timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "no run.json here" in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()
