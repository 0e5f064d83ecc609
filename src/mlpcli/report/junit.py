"""Results as JUnit XML (`--junit-xml FILE`), the test report CI systems show as tests: one
`<testcase>` per config or network, a `<failure>` for a failed check or an invalid config, an
`<error>` for a command that could not run (exit 2-4). The layout is the one pytest writes
and GitLab, Jenkins and GitHub's test-report actions read. docs/ci.md.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# characters XML 1.0 cannot hold (controls but tab, newline and carriage return; surrogates)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True)
class Case:
    """One test case: what it checked, how long it took, and what went wrong if anything."""

    classname: str  # the file (or built-in config) it came from
    name: str  # the network, or the file
    seconds: float
    failure: str | None = None  # a check that failed (exit 1): an invalid config, a mismatch
    error: str | None = None  # a command that could not run (exit 2-4)
    kind: str = ""  # the failure's or error's type: "invalid config", "usage", ...


def document(suite: str, cases: Sequence[Case], started: float) -> bytes:
    """The JUnit XML of `cases`, one `<testsuite>` named `suite` (the command) that began at
    `started` (time.time())."""
    import socket  # here, not at start-up: only a command given --junit-xml writes one
    import xml.etree.ElementTree as ET
    from datetime import UTC, datetime

    failures = sum(case.failure is not None for case in cases)
    errors = sum(case.error is not None for case in cases)
    total = f"{sum(case.seconds for case in cases):.6f}"
    counts = {"tests": str(len(cases)), "failures": str(failures), "errors": str(errors)}
    root = ET.Element("testsuites", {"name": suite, **counts, "time": total})
    stamp = datetime.fromtimestamp(started, UTC).replace(tzinfo=None)
    testsuite = ET.SubElement(
        root,
        "testsuite",
        {
            "name": suite, **counts, "skipped": "0", "time": total,
            "timestamp": stamp.isoformat(timespec="seconds"), "hostname": socket.gethostname(),
        },
    )  # fmt: skip
    for case in cases:
        element = ET.SubElement(
            testsuite,
            "testcase",
            {
                "classname": _text(case.classname),
                "name": _text(case.name),
                "time": f"{case.seconds:.6f}",
            },
        )
        for tag, message in (("failure", case.failure), ("error", case.error)):
            if message is not None:
                detail = ET.SubElement(element, tag, {"message": _text(message), "type": case.kind})
                detail.text = _text(message)
    ET.indent(root)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True)) + b"\n"


def _text(value: str) -> str:
    """`value` with the characters XML cannot hold written as escapes (`\\x1b`)."""
    return _NOT_XML.sub(lambda match: repr(match.group())[1:-1], value)
