"""``fuzz-birnn run --junit-xml PATH``: the run record as JUnit XML, as CI dashboards read it.

One ``<testcase>`` per (property, mode) search (``classname`` the property, ``name`` the mode),
with its worker time; a search that found faults carries one ``<failure>`` per fault, with the
fault's heading as the message (its signature, or the smallest report's message where the
signature has ``#`` for numbers) and the report's summary and path as the text; a search that
stopped with an error of the harness an ``<error>``; a search that checked no case (the budget
ran out first) is ``<skipped>``. Written from :mod:`fuzz_birnn.output.run_record`'s record, so it says
what the summary and ``run.json`` say, and renamed into place whole.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path

from fuzz_birnn.core.isa import NATIVE
from fuzz_birnn.output.files import write_whole
from fuzz_birnn.output.run_record import RunRecord, heading

__all__ = ["write_junit"]


def write_junit(path: Path, record: RunRecord, reports: Path) -> None:
    suite = ElementTree.Element("testsuite", name="fuzz-birnn", timestamp=record.started,
                                time=f"{record.seconds:.3f}")
    failures = errors = skipped = 0
    for search in record.cases.by_search:
        prop, mode = search.property, search.mode
        name = mode if search.isa == NATIVE else f"{mode} at {search.isa}"
        case = ElementTree.SubElement(suite, "testcase", classname=prop, name=name, time=f"{search.seconds:.3f}")
        ElementTree.SubElement(case, "properties").extend([
            ElementTree.Element("property", name=key, value=str(getattr(search, key)))
            for key in ("cases", "passed", "failed", "known", "unsupported", "not_compared")])
        for finding in record.findings:
            for seen in finding.seen_in:
                if (seen.property, seen.mode, seen.isa) == (prop, mode, search.isa):
                    failure = ElementTree.SubElement(case, "failure", message=heading(finding), type="fault")
                    failure.text = (f"report: {reports / seen.report}\n"
                                    f"smallest case of this fault: {finding.smallest.summary}")
                    failures += 1
        for error in record.errors:
            if error.startswith(f"{prop} ({mode})"):
                ElementTree.SubElement(case, "error", message=error.splitlines()[0][:300]).text = error
                errors += 1
        if not search.cases:
            ElementTree.SubElement(case, "skipped", message="no case checked before the run ended")
            skipped += 1
    suite.set("tests", str(len(record.cases.by_search)))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    write_whole(path, ElementTree.tostring(suite, encoding="unicode", xml_declaration=True))
