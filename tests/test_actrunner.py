"""The act-only rewrite changes exactly the two listed constructs and nothing else."""

from __future__ import annotations

import difflib
import re

from actrunner import LIBRARY, LIBRARY_REF, library_copy, rewrite
from conftest import ROOT


def test_rewrite_touches_only_self_references_and_queue():
    text = (
        "concurrency:\n  group: g\n  cancel-in-progress: false\n  queue: max\n"
        "steps:\n  - uses: $/actions/setup\n  - uses: actions/checkout@abc # v1\n"
        "    with:\n      note: 'uses: $/not-a-step'\n  - id: x\n    uses: $/actions/validate\n"
    )
    out = rewrite(text)
    changed = [line for line in difflib.ndiff(text.splitlines(), out.splitlines()) if line[:1] in "+-"]
    assert changed == [
        "-   queue: max",
        "-   - uses: $/actions/setup",
        f"+   - uses: {LIBRARY}/actions/setup@{LIBRARY_REF}",
        "-     uses: $/actions/validate",
        f"+     uses: {LIBRARY}/actions/validate@{LIBRARY_REF}",
    ]


def test_library_copy_differs_from_the_shipped_files_only_by_the_rewrite(tmp_path):
    """Judged line by line against the shipped files, not against `rewrite()` itself (which
    `library_copy` calls: comparing the two would pass whatever the rewrite did)."""
    copy = library_copy(tmp_path / "lib")
    shipped = [*ROOT.glob(".github/workflows/*.yml"), ROOT / "action.yml", *ROOT.glob("actions/*/action.yml")]
    rewritten = 0
    for path in shipped:
        original = path.read_text().splitlines()
        copied = (copy / path.relative_to(ROOT)).read_text().splitlines()
        removed = [line[2:] for line in difflib.ndiff(original, copied) if line.startswith("- ")]
        added = [line[2:] for line in difflib.ndiff(original, copied) if line.startswith("+ ")]
        self_references = [line for line in removed if line.strip() != "queue: max"]
        assert all(re.fullmatch(r"\s*(- )?uses: \$/[\w./-]+", line) for line in self_references), removed
        assert added == [f"{line.replace('$/', LIBRARY + '/')}@{LIBRARY_REF}" for line in self_references]
        assert not any("$/" in line or line.strip() == "queue: max" for line in copied)
        rewritten += bool(removed)
    assert rewritten >= 3  # the reusable workflows and the root action use $/


def test_readme_snippets_are_the_files_the_e2e_tests_run():
    readme = (ROOT / "README.md").read_text()
    for path in sorted((ROOT / "example-project" / "workflows").glob("*.yml")):
        assert path.read_text() in readme, f"README does not show {path.name} as it is"


def test_the_two_archive_stand_ins_are_one_file():
    """act copies each stand-in folder on its own, so setup-uv's stand-in carries a copy of the
    cache stand-in's archive code: the two must not drift apart (one cost model for both)."""
    standins = ROOT / "tests" / "standins"
    assert (standins / "setup-uv" / "archive.js").read_bytes() == (standins / "cache" / "archive.js").read_bytes()
