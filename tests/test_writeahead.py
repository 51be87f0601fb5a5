"""The write-ahead log: the parent reads back the case in flight, whatever state the worker left."""

from __future__ import annotations

from fuzz_birnn.campaign import writeahead
from fuzz_birnn.campaign.writeahead import WriteAhead, last_in_flight


def test_the_last_complete_record_is_the_case_in_flight(tmp_path):
    path = tmp_path / ".inflight-0.json"
    ahead = WriteAhead(path)
    assert last_in_flight(path) is None  # opened, nothing written ahead yet
    ahead.write({"case": 1})
    ahead.write({"case": 2})
    assert last_in_flight(path) == {"case": 2}
    with path.open("ab") as file:  # a worker killed in the middle of writing the next one
        file.write(b'{"case": 3, "det')
    assert last_in_flight(path) == {"case": 2}
    with ahead:
        pass
    assert not path.exists() and last_in_flight(path) is None


def test_the_log_starts_over_past_its_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(writeahead, "MAX_BYTES", 100)
    path = tmp_path / ".inflight-0.json"
    with WriteAhead(path) as ahead:
        for number in range(50):
            ahead.write({"case": number, "padding": "x" * 20})
        assert path.stat().st_size <= 100 + 50
        assert last_in_flight(path) == {"case": 49, "padding": "x" * 20}


def test_garbage_is_no_record(tmp_path):
    path = tmp_path / ".inflight-0.json"
    for data in (b"", b"not json\n", b"[1, 2]\n", b"\xff\xfe\n"):
        path.write_bytes(data)
        assert last_in_flight(path) is None
