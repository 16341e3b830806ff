"""The operations documentation against the code: every exit code with its meaning, where each
output of a run lives under OUT, and every test its guarantees cite exists."""

from __future__ import annotations

import re

from jobs.common.errors import LockHeldError
from jobs.storage.locks import lock_path
from jobs.training.model_files import checkpoint_dir
from tests.conftest import REPO


def exit_code_table(text: str) -> dict[str, str]:
    """code -> meaning, from the rows ``| CODE | MEANING |`` of a markdown exit-code table."""
    return dict(re.findall(r"^\| (\d+) \| ([^|]+) \|", text, re.M))


def readme_exit_codes() -> str:
    """The README's exit-code section."""
    readme = (REPO / "README.md").read_text()
    match = re.search(r"^## Exit codes\n(.*?)(?=^## |\Z)", readme, re.M | re.S)
    assert match, "README.md has no ## Exit codes section"
    return match.group(1)


def test_operations_section_matches_the_exit_codes_and_layout():
    """docs/operations.md (and the README's exit-code table) against the code: every exit code
    with its meaning, and where each output lives under OUT."""
    from jobs.common.errors import (
        EXIT_DIVERGED,
        EXIT_MODEL_FILE,
        BadInputError,
        JobError,
        StaleModelError,
        UsageError,
    )
    from jobs.storage import layout
    from jobs.storage.export import MANIFEST, MARKER

    operations = REPO / "docs" / "operations.md"
    assert operations.is_file(), "docs/operations.md is missing"
    text = operations.read_text()
    for where, doc in (("docs/operations.md", text), ("README.md", readme_exit_codes())):
        table = exit_code_table(doc)
        assert sorted(map(int, table)) == [0, 1, 2, 3, 4, 5, 6, 7, 130], where
        assert JobError.exit_code == 1 and "job error" in table["1"], where
        assert UsageError.exit_code == 2 and "usage" in table["2"], where
        assert BadInputError.exit_code == 3 and "bad input" in table["3"], where
        assert LockHeldError.exit_code == 4 and "lock" in table["4"], where
        assert EXIT_MODEL_FILE == 5 and "model file" in table["5"], where
        assert EXIT_DIVERGED == 6 and "diverged" in table["6"], where
        assert StaleModelError.exit_code == 7 and "older than" in table["7"], where
    out = "OUT"
    for path in (
        layout.ingest_summary(out),
        layout.quarantine(out),
        layout.recommendations_for(out, "D") + "/",
        lock_path(layout.recommendations(out), "D"),
        checkpoint_dir(layout.model_dir(out)) + "/",
        layout.ingest_dir(out) + "/",
        layout.fresh_dir(out, "D") + "/",
    ):
        assert f"`{path}" in text, path
    assert f"`{MANIFEST}`" in text and f"`{MARKER}`" in text


def guarantee_tests(text: str) -> list[str]:
    """The ``tests/...py::test_name`` references of the Guarantees section."""
    match = re.search(r"^## Guarantees\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, "docs/operations.md has no ## Guarantees section"
    return re.findall(r"`(tests/[\w/]+\.py::\w+)`", match.group(1))


def test_every_guarantee_cites_a_test_that_exists():
    cited = guarantee_tests((REPO / "docs" / "operations.md").read_text())
    assert len(cited) >= 20
    for reference in cited:
        path, name = reference.split("::")
        source = (REPO / path).read_text()
        assert re.search(rf"^def {name}\(", source, re.M), reference
